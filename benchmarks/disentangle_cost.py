"""Cost of every disentanglement metric at the protocol sizes of params.yaml's base
``disentangle.metrics`` section (disentanglement_lib's study sizes).

Each metric's whole ``compute`` runs once on a synthetic code of dSprites' factor
sizes (3, 6, 40, 32, 32): a fixed random linear map of the factor indices to D=10
dimensions plus Gaussian noise. The time spent inside ``codes_fn`` (the encoder's
share in the real stage; here a matrix product) is measured separately, so the
"core" columns are the metric itself (sampling factors plus its classifiers).
CPU seconds count every thread of this process (DCI's fits run in threads, one
per available core), so CPU > wall means more than one core was busy.

With --conv64-encoder the CPU seconds per image of a conv64 VAE's ``represent``
(1 torch thread, batches of 1000 random 64x64 images) are measured too, and each
metric's encoder cost in the real stage is projected as rows x that (rendering
the images not counted).

Usage: OMP_NUM_THREADS=1 python benchmarks/disentangle_cost.py [--metrics dci sap]
       [--conv64-encoder]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from vaebench.evaluate.disentanglement import METRICS

FACTOR_SIZES = (3, 6, 40, 32, 32)  # dSprites: shape, scale, orientation, posX, posY
CODE_DIM = 10
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


class TimedCodes:
    """A fixed linear code of the factors + noise that adds up its own CPU and wall time."""

    def __init__(self, seed: int = 0):
        gen = np.random.default_rng(seed)
        self.weights = gen.normal(size=(len(FACTOR_SIZES), CODE_DIM)) / np.asarray(FACTOR_SIZES)[:, None]
        self.noise = np.random.default_rng(seed + 1)
        self.cpu = self.wall = 0.0
        self.rows = 0

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        wall, cpu = time.perf_counter(), time.process_time()
        codes = factors @ self.weights + 0.05 * self.noise.normal(size=(len(factors), CODE_DIM))
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.rows += len(factors)
        return codes


def conv64_seconds_per_image(n: int = 2000, batch: int = 1000) -> float:
    """CPU seconds per image of a conv64 VAE's represent (posterior mean), 1 thread."""
    import torch

    from vaebench.models import build_model, validate_model_config

    torch.set_num_threads(1)
    torch.manual_seed(0)
    block = {"dataset": "x", "backbone": "conv64", "latent_dim": CODE_DIM, "family": "vae"}
    model = build_model(validate_model_config("bench", block), (1, 64, 64)).eval()
    x = torch.rand(batch, 1, 64, 64).round()
    with torch.no_grad():
        model.represent(x)  # warm-up
        cpu = time.process_time()
        for _ in range(n // batch):
            model.represent(x)
    return (time.process_time() - cpu) / (n // batch * batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--metrics", nargs="+", choices=sorted(METRICS), default=list(METRICS))
    ap.add_argument("--conv64-encoder", action="store_true",
                    help="also project each metric's encoder cost with a conv64 VAE")
    args = ap.parse_args()
    per_image = conv64_seconds_per_image() if args.conv64_encoder else None
    if per_image is not None:
        print(f"conv64 represent: {per_image * 1e3:.3f} CPU ms per image (1 thread)")
    protocol = yaml.safe_load(PARAMS.read_text())["disentangle"]["metrics"]
    print(f"factor sizes {FACTOR_SIZES}, D={CODE_DIM}, BLAS threads 1")
    header = (f"{'metric':<11} {'cpu_s':>8} {'wall_s':>8} {'core_cpu':>9} {'core_wall':>9} "
              f"{'codes_cpu':>9} {'codes_wall':>10} {'rows':>9} {'conv64_cpu':>10}  result")
    print(header)
    for name in args.metrics:
        params = dict(protocol[name])
        codes_fn = TimedCodes()
        with threadpool_limits(limits=1, user_api="blas"):
            wall, cpu = time.perf_counter(), time.process_time()
            result = METRICS[name](codes_fn, FACTOR_SIZES, np.random.default_rng(0), **params)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        encoder = "-" if per_image is None else f"{codes_fn.rows * per_image:.0f}"
        shown = ", ".join(f"{k} {v:.4f}" for k, v in result.items())
        print(f"{name:<11} {cpu:8.2f} {wall:8.2f} {cpu - codes_fn.cpu:9.2f} "
              f"{wall - codes_fn.wall:9.2f} {codes_fn.cpu:9.2f} {codes_fn.wall:10.2f} "
              f"{codes_fn.rows:9d} {encoder:>10}  {shown}", flush=True)


if __name__ == "__main__":
    main()
