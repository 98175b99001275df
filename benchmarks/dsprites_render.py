"""Speed of the dSprites renderer against its definition, in one run (a ratio).

``render`` draws every image the disentanglement metrics encode (~37k per model on the
quick profile, ~3M at disentanglement_lib's sizes), so it sits on the disentangle
stage's critical path. The reference is the documented geometry written out
directly (every shape's inequality on every pixel, then a select:
``tests/data/test_dsprites.py``); both give the same pixels.

Usage: OMP_NUM_THREADS=1 python benchmarks/dsprites_render.py [--n 8192] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "data"))
from test_dsprites import _render_by_definition  # noqa: E402

from vaebench.data import dsprites  # noqa: E402


def best_rate(fn, factors: np.ndarray, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(factors)
        best = min(best, time.perf_counter() - t)
    return len(factors) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(s, size=args.n) for s in dsprites.FACTOR_SIZES], axis=1)
    chunked = lambda f: np.concatenate([_render_by_definition(f[i:i + 256])   # noqa: E731
                                        for i in range(0, len(f), 256)])
    rates = {"definition (all shapes, select)": best_rate(chunked, factors, args.repeats),
             "render (own shape only)": best_rate(dsprites.render, factors, args.repeats)}
    assert np.array_equal(dsprites.render(factors), chunked(factors))
    base = next(iter(rates.values()))
    print(f"{args.n} random factor combinations, best of {args.repeats}; same pixels")
    print("| renderer | images/s | ratio |\n|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
