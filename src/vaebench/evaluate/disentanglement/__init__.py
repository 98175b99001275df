"""Disentanglement metrics: one module per metric, each with the same entry point

    compute(codes_fn, factor_sizes, rng, **params) -> dict[str, float]

where codes_fn maps integer factor classes (n, F) to codes (n, D), and a pure
core over numpy arrays. METRICS maps the metric names used in params.yaml to
their compute functions.
"""

from . import beta_vae, dci, factor_vae, mig, modularity, sap

METRICS = {
    "beta_vae": beta_vae.compute,
    "factor_vae": factor_vae.compute,
    "mig": mig.compute,
    "dci": dci.compute,
    "sap": sap.compute,
    "modularity": modularity.compute,
}

__all__ = ["METRICS", "beta_vae", "dci", "factor_vae", "mig", "modularity", "sap"]
