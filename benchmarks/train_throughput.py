"""Throughput of the training loop (``vaebench.train.fit``) against a minimal loop, in one run.

The minimal loop is what any hand-written trainer does and nothing more: the same
model, batch size and Adam (with fit's options), the images already on the device as floats in [0, 1],
a fresh permutation and dynamic binarisation per batch (the model's protocol), and
``model.loss(x, step).loss.backward(); opt.step()``. ``fit`` adds its bookkeeping
(per-term sums, the divergence check, the KL warm-up factor, the test evaluation
after each epoch); the ratio fit / minimal is its cost (goal: >= 0.95).

Times are process CPU time (run with one thread, OMP_NUM_THREADS=1): the work done,
little affected by other processes sharing the cores. ``fit`` is timed whole and
without its test evaluations (the CPU time inside ``evaluate_terms`` taken off).
Both run in the same process, interleaved; rates are the best of ``--repeats``, ratios
the median over repeats of the ratio within a repeat (robust to load that changes).

Usage: python benchmarks/train_throughput.py [--models mnist_vae dsprites_vae
       --data data/prepared --n-train 4000 --n-train-conv 640 --epochs 3 --repeats 2
       --test-ratio 0.1667]
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from vaebench import train
from vaebench.config import load_config
from vaebench.data import load_prepared
from vaebench.models import build_model

ADAM = train.ADAM_OPTIONS     # the minimal loop's Adam is fit's


def subset(data, n_train: int, n_test: int):
    return replace(data, x_train=data.x_train[:n_train], factors_train=data.factors_train[:n_train],
                   x_test=data.x_test[:n_test], x_test_binary=data.x_test_binary[:n_test],
                   factors_test=data.factors_test[:n_test])


def minimal_loop(model, data, batch_size: int, lr: float, epochs: int, binarize: bool) -> float:
    """Images per CPU second of the bare loop."""
    gen = torch.Generator().manual_seed(0)
    x_all = data.x_train.float() / data.max_value
    opt = torch.optim.Adam(model.parameters(), lr=lr, **ADAM)
    model.train()
    n, step = len(x_all), 0
    t0 = time.process_time()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            x = x_all[idx]
            if binarize and data.max_value != 1:
                x = torch.bernoulli(x, generator=gen)
            loss = model.loss(x, step).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return n * epochs / (time.process_time() - t0)


class Timed:
    """Wraps a function and adds up the CPU time spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.process_time() - t0


def fit_rates(model, data, tcfg, epochs: int, binarize: bool) -> tuple[float, float]:
    """Images per CPU second of ``fit``: without the test evaluations it runs after
    each epoch (its training steps, set-up included), and with them."""
    evaluate = train.evaluate_terms
    train.evaluate_terms = timed = Timed(evaluate)
    try:
        t0 = time.process_time()
        train.fit(model, data, tcfg, epochs=epochs, seed=0, binarize=binarize)
        seconds = time.process_time() - t0
    finally:
        train.evaluate_terms = evaluate
    images = len(data.x_train) * epochs
    return images / (seconds - timed.seconds), images / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["mnist_vae", "dsprites_vae"])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", type=Path, default=Path("data/prepared"))
    ap.add_argument("--n-train", type=int, default=4000, help="training images (MLP models)")
    ap.add_argument("--n-train-conv", type=int, default=640, help="training images (conv64)")
    ap.add_argument("--test-ratio", type=float, default=1 / 6,
                    help="test images fit evaluates per training image (MNIST: 10k / 60k)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    cfg = load_config(args.params)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])   # first-Adam import cost, untimed
    print(f"{torch.get_num_threads()} thread(s); {args.epochs} epochs; {args.repeats} repeats "
          f"(CPU time; rates: best, ratios: median)")
    print("| model | backbone | train / test images | batch | minimal loop img/s | fit steps img/s "
          "| fit / minimal | fit with test evaluation img/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        mcfg, tcfg = cfg.models[name], cfg.model_train(name)
        conv = mcfg.backbone == "conv64"
        n_train = args.n_train_conv if conv else args.n_train
        data = subset(load_prepared(args.data / mcfg.dataset), n_train,
                      round(n_train * args.test_ratio))
        rates = {"minimal": [], "fit": [], "fit_eval": []}
        for _ in range(args.repeats):            # interleaved, fresh model each time
            torch.manual_seed(0)
            model = build_model(mcfg, data.image_shape)
            rates["minimal"].append(minimal_loop(model, data, tcfg.batch_size, tcfg.lr,
                                                 args.epochs, mcfg.binarize))
            torch.manual_seed(0)
            model = build_model(mcfg, data.image_shape)
            steps, total = fit_rates(model, data, tcfg, args.epochs, mcfg.binarize)
            rates["fit"].append(steps)
            rates["fit_eval"].append(total)
        best = {k: max(v) for k, v in rates.items()}
        ratio = {k: statistics.median(a / b for a, b in zip(rates[k], rates["minimal"]))
                 for k in ("fit", "fit_eval")}
        print(f"| {name} | {mcfg.backbone} | {n_train} / {len(data.x_test)} | {tcfg.batch_size} | "
              f"{best['minimal']:.0f} | {best['fit']:.0f} | {ratio['fit']:.3f} | "
              f"{best['fit_eval']:.0f} | {ratio['fit_eval']:.3f} |")

if __name__ == "__main__":
    main()
