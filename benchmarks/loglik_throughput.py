"""Throughput of the log-likelihood estimator against the decoder alone, in one run.

The estimator (``importance_estimates``) should cost close to K decoder passes per
test point: sampling, the densities log p(x|z), log p(z), log q(z|x) and the
running log-sum-exp should add little to the decoder's forward pass. This prints
(importance samples x images) per second of the estimator -- proposal only, and
with the naive prior-sampling estimator as the stage runs it -- and of the raw
decoder network (``model.decoder`` on the same (chunk_samples * chunk_points, D)
batches of codes), and their ratio (goal: >= 0.8).

Usage: python benchmarks/loglik_throughput.py [--n 200 --k 500 --chunk-points 50
       --chunk-samples 50 --model mnist_vae --device cpu --repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from vaebench.config import load_config
from vaebench.devices import resolve_device
from vaebench.evaluate.loglik.estimate import importance_estimates
from vaebench.models import build_model

# The clock: process CPU time on a CPU (one thread: the work done, unaffected by other
# processes sharing the cores), wall time on an accelerator (main() picks).
clock = time.process_time


def decoder_rows_per_s(model, rows: int, batch: int, latent: int, device) -> float:
    """Rows per second of the bare decoder network on batches of ``batch`` codes."""
    z = torch.randn(batch, latent, device=device)
    with torch.no_grad():
        model.decoder(z)                                   # warm-up
        _sync(device)
        t0 = clock()
        done = 0
        while done < rows:
            model.decoder(z)
            done += batch
        _sync(device)
    return done / (clock() - t0)


def likelihood_rows_per_s(model, x, rows: int, chunk_points: int, chunk_samples: int,
                          latent: int) -> float:
    """Rows per second of decoder + log p(x|z) alone (no sampling, no bookkeeping), laid
    out as the estimator does it (codes (samples, points, D), the points broadcast): the
    floor of any estimator that evaluates the likelihood of every (x, z_k) pair."""
    from vaebench.evaluate.loglik.estimate import validation
    xb = x[:chunk_points]
    z = torch.randn(chunk_samples, len(xb), latent, device=x.device)
    with torch.no_grad(), validation(False):
        model.decode(z).log_prob(xb)
        _sync(x.device)
        t0 = clock()
        done = 0
        while done < rows:
            model.decode(z).log_prob(xb)
            done += z.shape[0] * z.shape[1]
        _sync(x.device)
    return done / (clock() - t0)


def estimator_rows_per_s(model, x, k: int, chunk_points: int, chunk_samples: int,
                         naive: bool) -> float:
    """(importance samples x images) per second of the estimator."""
    importance_estimates(model, x[:2], [2], chunk_points=2, chunk_samples=2, progress=False)
    _sync(x.device)
    t0 = clock()
    importance_estimates(model, x, [k], chunk_points=chunk_points, chunk_samples=chunk_samples,
                         naive=naive, progress=False)
    _sync(x.device)
    return len(x) * k / (clock() - t0)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist_vae", help="a model of params.yaml")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--n", type=int, default=200, help="test images")
    ap.add_argument("--k", type=int, default=500, help="importance samples per image")
    ap.add_argument("--chunk-points", type=int, default=50)
    ap.add_argument("--chunk-samples", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5,
                    help="interleaved rounds of the four measurements")
    args = ap.parse_args()

    device = resolve_device(args.device, "--device")
    global clock
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    cfg = load_config(args.params)
    mcfg = cfg.models[args.model]
    shape = (1, 28, 28) if mcfg.dataset == "mnist" else (1, 64, 64)
    torch.manual_seed(0)
    model = build_model(mcfg, shape).to(device).eval()
    x = torch.rand(args.n, *shape, device=device).round()
    batch = args.chunk_points * args.chunk_samples
    rows = args.n * args.k

    names = ("decoder", "likelihood", "proposal", "both")
    rates = {name: [] for name in names}
    for _ in range(args.repeats):   # interleaved rounds, so a busy machine slows all alike
        runs = {
            "decoder": lambda: decoder_rows_per_s(model, rows, batch, mcfg.latent_dim, device),
            "likelihood": lambda: likelihood_rows_per_s(model, x, rows, args.chunk_points,
                                                        args.chunk_samples, mcfg.latent_dim),
            "proposal": lambda: estimator_rows_per_s(model, x, args.k, args.chunk_points,
                                                     args.chunk_samples, naive=False),
            "both": lambda: estimator_rows_per_s(model, x, args.k, args.chunk_points,
                                                 args.chunk_samples, naive=True)}
        for name, run in runs.items():
            rates[name].append(run())
    # each ratio is the median over rounds of the ratio within a round (robust to load that
    # changes between rounds); the rates shown are the best round's
    best = {name: max(r) for name, r in rates.items()}
    ratio = {(a, b): statistics.median(x / y for x, y in zip(rates[a], rates[b]))
             for a in names for b in names}
    print(f"{args.model} on {device}, {torch.get_num_threads()} threads: {args.n} images x "
          f"K={args.k}, decoder batches of {args.chunk_samples} x {args.chunk_points} rows "
          f"({'CPU' if clock is time.process_time else 'wall'} time, {args.repeats} rounds; "
          f"ratios: median over rounds)")
    print(f"  raw decoder forward            : {best['decoder']:12.0f} rows/s")
    print(f"  decoder + log p(x|z)           : {best['likelihood']:12.0f} rows/s"
          f"   ratio to decoder {ratio['likelihood', 'decoder']:.2f}")
    print(f"  estimator, proposal q only     : {best['proposal']:12.0f} samples x images/s"
          f"   ratio to decoder {ratio['proposal', 'decoder']:.2f}, to decoder + log p(x|z) "
          f"{ratio['proposal', 'likelihood']:.2f}")
    print(f"  estimator, q and naive (stage) : {best['both']:12.0f} samples x images/s"
          f"   ratio to decoder {ratio['both', 'decoder']:.2f}")

if __name__ == "__main__":
    main()
