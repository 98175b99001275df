"""Cost of the contractive penalty's exact Jacobian, as ratios to a plain autoencoder step.

One training step (batch 64, Adam) of ``ae`` and of ``cae`` with the exact
||J_f(x)||_F^2 on m = 4, 8, 16, 64 examples of the batch (``jacobian_examples``),
for the mlp backbone (28x28, 50 code units) and conv64 (64x64, 10 code units), plus
the single-layer closed form; CPU time of this process per step, so other load on the
machine counts less than in wall-clock time.

Usage: OMP_NUM_THREADS=1 python benchmarks/cae_cost.py [--steps 10]
"""
from __future__ import annotations

import argparse
import time

import torch

from vaebench.models import build_model, validate_model_config

SETUPS = {"mlp": ((1, 28, 28), 50), "conv64": ((1, 64, 64), 10)}


def seconds_per_step(block: dict, shape, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model(validate_model_config("bench", block), shape)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(64, *shape).round()
    for i in range(steps + 2):   # two warm-up steps
        if i == 2:
            t0 = time.process_time()
        opt.zero_grad()
        model.loss(x, i).loss.backward()
        opt.step()
    return (time.process_time() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    print(f"CPU, {torch.get_num_threads()} thread(s); CPU seconds per step of batch 64")
    for backbone, (shape, latent) in SETUPS.items():
        base = {"dataset": "x", "backbone": backbone, "latent_dim": latent}
        ae = seconds_per_step({**base, "family": "ae"}, shape, args.steps)
        print(f"{backbone}: ae {ae * 1e3:.1f} ms")
        for m in (4, 8, 16, 64):
            t = seconds_per_step({**base, "family": "cae", "jacobian_examples": m}, shape, args.steps)
            print(f"  cae, exact Jacobian on {m:2d} examples: {t * 1e3:7.1f} ms  ratio to ae {t / ae:5.2f}")
        if backbone == "mlp":
            t = seconds_per_step({**base, "family": "cae", "hidden": []}, shape, args.steps)
            one = seconds_per_step({**base, "family": "ae", "hidden": []}, shape, args.steps)
            print(f"  single sigmoid layer, closed form on all 64: {t * 1e3:.1f} ms, "
                  f"ratio to the single-layer ae {t / one:.2f}")


if __name__ == "__main__":
    main()
