"""Cost of the variational-family options against the plain (amortised, reparameterised,
joint) VAE, as ratios measured in one run on the same synthetic MNIST-sized batches.

Training: seconds per training step (forward, backward, optimiser step) of each
variant / the VAE's. Inference on new data: seconds to encode a test-sized set
(svi_vae's test-time optimisation) / the VAE's encoder pass.

Usage: OMP_NUM_THREADS=1 python benchmarks/variational_cost.py [--steps 30] [--n-test 1000]
"""
from __future__ import annotations

import argparse
import time

import torch

from vaebench.data.base import PreparedData
from vaebench.models import build_model, validate_model_config
from vaebench.models.capabilities import PerDatapoint

SHAPE = (1, 28, 28)
VARIANTS = {
    "vae": {"family": "vae"},
    "score_function S=2 loo": {"family": "vae", "gradient": "score_function", "mc_samples": 2,
                               "baseline": "leave_one_out"},
    "score_function S=4 loo": {"family": "vae", "gradient": "score_function", "mc_samples": 4,
                               "baseline": "leave_one_out"},
    "alternating": {"family": "vae", "optimisation": "alternating"},
    "svi_vae K=1": {"family": "svi_vae", "inner_steps": 1},
    "svi_vae K=2": {"family": "svi_vae", "inner_steps": 2},
}


def make(options: dict):
    cfg = validate_model_config("bench", {"dataset": "mnist", "backbone": "mlp", "latent_dim": 50,
                                          **options})
    torch.manual_seed(0)
    return build_model(cfg, SHAPE)


def fake_data(n_train: int, n_test: int) -> PreparedData:
    x = torch.bernoulli(torch.full((n_train + n_test, *SHAPE), 0.13)).to(torch.uint8)
    meta = {"dataset": "mnist", "max_value": 1, "image_shape": list(SHAPE)}
    f = torch.zeros(n_train + n_test, 1, dtype=torch.long)
    return PreparedData("bench", meta, x[:n_train], x[n_train:], x[n_train:], f[:n_train], f[n_train:])


def seconds_per_step(model, data: PreparedData, steps: int, batch: int = 64) -> float:
    """The training loop's step (train.fit), timed after two warm-up steps."""
    model.before_fit(data, True)
    opts = {k: torch.optim.Adam(p, lr=1e-3) for k, p in model.optim_groups().items()}
    idx_all = torch.randperm(len(data.x_train))
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        idx = idx_all[(i * batch) % (len(idx_all) - batch):][:batch]
        x = data.train_batch(idx, True)
        out = (model.training_loss(x, i, idx) if isinstance(model, PerDatapoint)
               else model.loss(x, i))
        for o in opts.values():
            o.zero_grad(set_to_none=True)
        out.loss.backward()
        for name in model.groups_to_step(i):
            opts[name].step()
    return (time.perf_counter() - t0) / steps


def encode_seconds(model, x: torch.Tensor) -> float:
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        model.encode(x).mean
    return time.perf_counter() - t0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--n-test", type=int, default=1000)
    args = ap.parse_args()
    data = fake_data(4000, args.n_test)
    print(f"MNIST-sized MLP (784-200-200-50), batch 64, CPU, {torch.get_num_threads()} thread(s)")
    base = None
    for name, options in VARIANTS.items():
        s = seconds_per_step(make(options), data, args.steps)
        base = base or s
        print(f"  train step  {name:24s} {1e3 * s:8.1f} ms   x{s / base:5.2f} of vae")
    x = data.test_inputs(True)
    enc = encode_seconds(make(VARIANTS["vae"]), x)
    svi = make({"family": "svi_vae"})
    s = encode_seconds(svi, x)
    print(f"  encode {len(x)} test images: vae {enc:.3f} s, svi_vae ({svi.cfg.test_steps} Adam "
          f"steps) {s:.2f} s   x{s / enc:.0f}")
