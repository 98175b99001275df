"""Quick-profile table of the deterministic autoencoder family, from trained checkpoints.

For each model: test reconstruction error (nats per image, clean inputs), the same
from masked inputs (masking at --mask, fixed seed, clean target), mean fraction of
active code units, mean squared Frobenius norm of the encoder Jacobian, and that norm
divided by the total code variance (sum_u Var[z_u] over the test set) -- the raw norm
depends on the code's scale (sigmoid codes are bounded, linear ones are not), the
ratio does not. Then the checks of issue #3, each printed with its numbers.

Usage (after training, e.g. `vaebench train mnist_ae ...` for each):
    python benchmarks/ae_family.py --models models --data data/prepared \
        mnist_ae mnist_dae mnist_sparse_ae mnist_ksparse_ae mnist_cae
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vaebench.corruptions import masking
from vaebench.data import load_prepared
from vaebench.checkpoints import load_checkpoint


@torch.no_grad()
def row(model, x: torch.Tensor, mask: float) -> dict:
    diag = model.diagnostics(x)
    gen = torch.Generator().manual_seed(0)
    x_masked = masking(x, mask, gen)
    masked = -model.decode(model.represent(x_masked)).log_prob(x).mean()
    variance = model.represent(x).var(0).sum()
    return {"recon_nats": diag["recon_nats"], "masked_recon_nats": float(masked),
            "active_fraction": diag["active_fraction"],
            "jacobian_sq_norm": diag["jacobian_sq_norm"],
            "jacobian_per_code_var": diag["jacobian_sq_norm"] / float(variance)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--data", type=Path, default=Path("data/prepared"))
    ap.add_argument("--mask", type=float, default=0.25, help="masking level of the masked column")
    args = ap.parse_args()
    rows, data = {}, {}
    for name in args.names:
        model, ckpt = load_checkpoint(args.models / name / "seed0.pt")
        if ckpt["dataset"] not in data:
            data[ckpt["dataset"]] = load_prepared(args.data / ckpt["dataset"])
        x = data[ckpt["dataset"]].test_inputs(model.cfg.binarize)
        rows[name] = {"family": model.cfg.family, **row(model, x, args.mask)}
    cols = ["recon_nats", "masked_recon_nats", "active_fraction", "jacobian_sq_norm",
            "jacobian_per_code_var"]
    print(f"| model | family | {' | '.join(cols)} |")
    print("|" + "---|" * (len(cols) + 2))
    for name, r in rows.items():
        print(f"| {name} | {r['family']} | " + " | ".join(f"{r[c]:.4g}" for c in cols) + " |")

    base = next((n for n, r in rows.items() if r["family"] == "ae"), None)
    if base is None:
        return
    b = rows[base]
    print(f"\nchecks against {base} (masked column at level {args.mask}):")
    for name, r in rows.items():
        if r["family"] in ("sparse_ae", "ksparse_ae"):
            print(f"  {name} sparser than {base}: {r['active_fraction']:.3f} < "
                  f"{b['active_fraction']:.3f} -> {r['active_fraction'] < b['active_fraction']}")
        if r["family"] == "cae":
            for c in ("jacobian_sq_norm", "jacobian_per_code_var"):
                print(f"  {name} {c} below {base}: {r[c]:.4g} < {b[c]:.4g} -> {r[c] < b[c]}")
        if r["family"] == "dae":
            print(f"  {name} reconstructs masked inputs better: {r['masked_recon_nats']:.2f} < "
                  f"{b['masked_recon_nats']:.2f} -> {r['masked_recon_nats'] < b['masked_recon_nats']}")


if __name__ == "__main__":
    main()
