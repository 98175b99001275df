"""Cost of torch.use_deterministic_algorithms on the CPU for the conv64 backbone.

Reports training images/s with the switch off and on, and their ratio, in one
run. Usage: python benchmarks/determinism.py [--steps 20]
"""
from __future__ import annotations

import argparse
import time

import torch

from vaebench.models.nets import Conv64Decoder, Conv64Encoder


def images_per_second(deterministic: bool, steps: int, batch: int = 64) -> float:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(deterministic)
    enc, dec = Conv64Encoder((1, 64, 64), 20), Conv64Decoder(10, (1, 64, 64))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()])
    x = torch.rand(batch, 1, 64, 64).round()
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            t0 = time.perf_counter()
        logits = dec(enc(x)[:, :10])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.use_deterministic_algorithms(False)
    return steps * batch / (time.perf_counter() - t0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    off = images_per_second(False, args.steps)
    on = images_per_second(True, args.steps)
    print(f"conv64 training, CPU, {torch.get_num_threads()} threads")
    print(f"  deterministic off: {off:8.1f} images/s")
    print(f"  deterministic on : {on:8.1f} images/s")
    print(f"  ratio off/on     : {off / on:8.2f}")
