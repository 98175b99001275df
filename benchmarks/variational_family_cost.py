"""Training cost of the variational family (IWAE, learned priors, Gaussian decoders,
linear VAE) against the plain VAE, as ratios measured in one run on the same
synthetic MNIST-sized batches; and PPCA's closed-form fit against one VAE epoch.

Usage: OMP_NUM_THREADS=1 python benchmarks/variational_family_cost.py [--steps 30]
"""
from __future__ import annotations

import argparse
import time

from variational_cost import fake_data, make, seconds_per_step

VARIANTS = {
    "vae": {"family": "vae"},
    "iwae k=5": {"family": "iwae", "iw_samples": 5},
    "iwae k=50": {"family": "iwae", "iw_samples": 50},
    "prior gaussian": {"family": "vae", "prior": "gaussian"},
    "prior mog (10)": {"family": "vae", "prior": "mog", "prior_components": 10},
    "prior vamp (50)": {"family": "vae", "prior": "vamp", "prior_components": 50},
    "prior vamp (500)": {"family": "vae", "prior": "vamp", "prior_components": 500},
    "gaussian_learned decoder": {"family": "vae", "likelihood": "gaussian_learned",
                                 "binarize": False},
    "linear_vae (d=16)": {"family": "linear_vae", "latent_dim": 16},
}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    data = fake_data(4000, 1000)
    print("MNIST-sized MLP (784-200-200-50), batch 64, CPU")
    base = None
    for name, options in VARIANTS.items():
        s = seconds_per_step(make(options), data, args.steps)
        base = base or s
        print(f"  train step  {name:26s} {1e3 * s:8.1f} ms   x{s / base:5.2f} of vae")
    ppca = make({"family": "ppca", "latent_dim": 16})
    t0 = time.perf_counter()
    ppca.after_fit(data, False)
    fit_s = time.perf_counter() - t0
    epoch_s = base * len(data.x_train) / 64
    print(f"  ppca closed-form fit on {len(data.x_train)} images: {fit_s:.2f} s   "
          f"x{fit_s / epoch_s:.2f} of one vae epoch")
