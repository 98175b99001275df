"""The autoencoder blocks of the real params.yaml, trained at tiny size by the train stage:
each one samples from its ex-post mixture, reports its diagnostics, and keeps the
mixture in its checkpoint."""
from __future__ import annotations

import json
import math

import pytest
import torch

from vaebench.checkpoints import load_checkpoint
from vaebench.train import train_stage

AE_FAMILIES = {"ae", "dae", "sparse_ae", "ksparse_ae", "cae"}
DIAGNOSTICS = {"recon_nats", "recon_mse", "active_fraction", "jacobian_sq_norm",
               "expost_code_logpdf"}


def test_default_suite_has_every_autoencoder_family_on_mnist_and_three_on_dsprites(tiny_config):
    by_dataset: dict[str, set] = {}
    for name, m in tiny_config.models.items():
        if m.family in AE_FAMILIES:
            by_dataset.setdefault(m.dataset, set()).add(name)
    assert {tiny_config.models[n].family for n in by_dataset["mnist"]} == AE_FAMILIES
    assert {"dsprites_ae", "dsprites_dae", "dsprites_cae"} <= by_dataset["dsprites"]


# two of them (each stage run costs seconds): an MLP one and the conv64 contractive one
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist_ksparse_ae", "dsprites_cae"])
def test_train_stage_writes_diagnostics_samples_and_the_mixture(name, tiny_config, tiny_data,
                                                                 tmp_path):
    mcfg = tiny_config.models[name]
    metrics = train_stage(tiny_config, name, tiny_data / mcfg.dataset, tmp_path / "models",
                          tmp_path / "metrics.json", tmp_path / "plots", tmp_path / "figures")
    diag = json.loads((tmp_path / "metrics.json").read_text())["diagnostics"]
    assert diag == pytest.approx(metrics["diagnostics"])
    assert DIAGNOSTICS <= set(diag) and all(math.isfinite(v) for v in diag.values())
    assert 0 <= diag["active_fraction"] <= 1
    assert (tmp_path / "figures" / "samples.png").is_file()
    model, _ = load_checkpoint(tmp_path / "models" / "seed0.pt")
    assert model.prior() is not None
    assert model.sample(3).shape == (3, *model.image_shape)
    assert model.prior().mixture_distribution.probs.shape == (mcfg.expost_components,)
    if mcfg.family == "ksparse_ae":
        codes = model.represent(torch.rand(4, *model.image_shape).round())
        assert ((codes != 0).sum(1) == mcfg.top_k).all()
