"""Importance-sampling estimates of log p(x) at several K, and the naive estimator.

With a proposal q(z|x) (the encoder), importance sampling gives the unbiased estimate
p(x) ~ 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x), whose logarithm

    log p_K(x) = logmeanexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)]

is the K-sample bound L_K (Burda et al. 2016, arXiv:1509.00519, Theorem 1): in
expectation L_1 is the ELBO, L_K grows with K and reaches log p(x) as K -> inf.
The naive estimator samples the prior instead, log 1/K sum_k p(x|z_k),
z_k ~ p(z): unbiased for p(x) but of huge variance, because almost no prior sample
explains a given x.

One pass draws K_max = max(ks) samples per point and every K in ``ks`` uses the
first K of them (nested prefixes), so the whole list costs K_max decoder rows
per point. Memory is bounded by chunking over samples and over test points;
each chunk's codes are decoded in one decoder call of (chunk_samples *
chunk_points) rows (``decode`` takes codes with leading batch dimensions), and
the test points broadcast against them instead of being copied chunk_samples
times. The naive estimator decodes each prior code once for all points.

Speed: torch.distributions validates arguments and samples on every call, which
for a Bernoulli decoder costs as much as the log-density itself; the inputs are
checked once against p(x|z) (one decoder row per point) and the chunks then run
without the checks (benchmarks/loglik_throughput.py measures the result).

Randomness: sample k of every test point is drawn with the torch RNG seeded
from (seed, stream, k), and the proposal is the q(z|x) of the whole subset (one
encoder call), so the numbers do not depend on the chunk sizes.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution
from tqdm.auto import tqdm

PROPOSAL, PRIOR, GAPS, POSTERIOR = 0, 1, 2, 3   # independent random streams


def draw_base_seed(seed: int, stream: int) -> int:
    """A well-mixed base seed for one of the estimator's random streams; draw k uses
    base + k (``stage.stream_seed`` names a stage's streams; this one numbers draws)."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint64)[0] >> 2)


def seed_device(device: torch.device, seed: int) -> None:
    """Seed only the generator that sampling on ``device`` uses (``torch.manual_seed``
    would also queue a seeding of every CUDA device, with a stack trace, on each call)."""
    if device.type == "cpu":
        torch.default_generator.manual_seed(seed)
        return
    module = torch.get_device_module(device.type)
    generators = getattr(module, "default_generators", None)
    if generators is None:
        module.manual_seed(seed)
    else:
        generators[device.index if device.index is not None else module.current_device()
                   ].manual_seed(seed)


@contextmanager
def private_rng(device: torch.device | str) -> Iterator[None]:
    """Reseeding inside leaves the global torch RNG (CPU and ``device``) as it was."""
    device = torch.device(device)
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            yield
    else:
        with torch.random.fork_rng(devices=[device], device_type=device.type):
            yield


def draw(sample: Callable[[], Tensor], device: torch.device, seed: int, stream: int,
         k0: int, k1: int) -> Tensor:
    """Draws k0..k1-1 of ``stream``, each from its own seed, stacked: (k1 - k0, ...)."""
    base, out = draw_base_seed(seed, stream), []
    for k in range(k0, k1):
        seed_device(device, base + k)
        out.append(sample())
    return torch.stack(out)


@contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """torch.distributions' argument and sample checks on or off, restored afterwards."""
    previous = Distribution._validate_args
    Distribution.set_default_validate_args(enabled)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(previous)


def check_support(model, x: Tensor, q: Distribution, rows: int) -> None:
    """Evaluate log p(x|z) once per point with validation on: a clear error if x is
    outside the decoder's support (e.g. grey levels for a Bernoulli likelihood)."""
    z = q.sample()                                             # (N, *E)
    with validation(True):
        for zb, xb in zip(z.split(rows), x.split(rows)):
            model.decode(zb).log_prob(xb)


def check_ks(ks) -> list[int]:
    ks = [int(k) for k in ks]
    if not ks or any(k < 1 for k in ks) or any(b <= a for a, b in zip(ks, ks[1:])):
        raise ValueError(f"ks must be a non-empty, strictly increasing list of positive "
                         f"numbers of importance samples, e.g. [1, 10, 100]; got {ks}")
    return ks


@dataclass
class PointEstimates:
    """Per test point results (float64, each (N,))."""

    ks: list[int]
    log_p: dict[int, Tensor]     # importance-sampling estimate = L_K
    naive: dict[int, Tensor]     # prior-sampling estimate (empty if not asked for)
    recon: Tensor                # mean over the K_max proposal samples of log p(x|z)
    log_ratio: Tensor            # mean over the K_max samples of log q(z|x) - log p(z) (MC KL)


def _fold(acc: dict[int, Tensor], log_w: Tensor, k0: int, rows: slice) -> None:
    """Fold samples k0.. of one chunk, log_w (kc, b), into every prefix's running log-sum-exp."""
    for k, running in acc.items():
        m = min(log_w.shape[0], k - k0)
        if m > 0:
            running[rows] = torch.logaddexp(running[rows], log_w[:m].double().logsumexp(0))


@torch.no_grad()
def importance_estimates(model, x: Tensor, ks, *, chunk_points: int, chunk_samples: int,
                         seed: int = 0, q: Distribution | None = None, naive: bool = True,
                         progress: bool = True) -> PointEstimates:
    """log p_K(x) for every K in ``ks`` with proposal ``q`` (default: the encoder's q(z|x)).

    ``x``: (N, *image) test inputs. With ``naive``, also the prior-sampling
    estimator at the same K; its prior samples are shared by all test points
    (p(z) does not depend on x), so it costs K decoder rows, not N*K -- each
    point's estimate is still unbiased for p(x), but their errors are correlated,
    so its standard error over points understates its uncertainty.
    """
    ks = check_ks(ks)
    if chunk_points < 1 or chunk_samples < 1:
        raise ValueError(f"chunk_points and chunk_samples must be positive; got "
                         f"{chunk_points}, {chunk_samples}")
    prior = model.prior()
    if prior is None:
        raise ValueError(f"{type(model).__name__} has no prior p(z); log p(x) cannot be estimated")
    q = model.encode(x) if q is None else q          # batch (N,): one encoder call
    n, k_max = len(x), ks[-1]
    f64 = {"dtype": torch.float64, "device": x.device}
    acc = {k: torch.full((n,), -math.inf, **f64) for k in ks}
    acc_naive = {k: torch.full((n,), -math.inf, **f64) for k in ks} if naive else {}
    recon, log_ratio = torch.zeros(n, **f64), torch.zeros(n, **f64)
    calls = math.ceil(k_max / chunk_samples) * math.ceil(n / chunk_points)
    bar = tqdm(total=calls, desc="log p(x)", disable=None if progress else True, leave=False)
    with private_rng(x.device):
        check_support(model, x, q, chunk_points * chunk_samples)
    with private_rng(x.device), validation(False):
        for k0 in range(0, k_max, chunk_samples):
            k1 = min(k0 + chunk_samples, k_max)
            z = draw(q.sample, x.device, seed, PROPOSAL, k0, k1)   # (kc = k1 - k0, N, *E)
            ratio = q.log_prob(z) - prior.log_prob(z)              # (kc, N)
            log_ratio += ratio.double().sum(0)
            if naive:                                              # p(x|z_k), batch (kc,)
                px_prior = model.decode(draw(prior.sample, x.device, seed, PRIOR, k0, k1))
            for i0 in range(0, n, chunk_points):
                rows = slice(i0, min(i0 + chunk_points, n))
                xb = x[rows]                                       # (b, *image)
                # codes (kc, b, *E): one decoder call of kc*b rows; xb broadcasts over kc
                lpx = model.decode(z[:, rows]).log_prob(xb)        # (kc, b)
                recon[rows] += lpx.double().sum(0)
                _fold(acc, lpx - ratio[:, rows], k0, rows)         # log w = log p(x,z) - log q
                if naive:                                          # (b, 1, *image) vs batch (kc,)
                    _fold(acc_naive, px_prior.log_prob(xb.unsqueeze(1)).T, k0, rows)
                bar.update()
    bar.close()
    return PointEstimates(ks=ks, log_p={k: acc[k] - math.log(k) for k in ks},
                          naive={k: a - math.log(k) for k, a in acc_naive.items()},
                          recon=recon / k_max, log_ratio=log_ratio / k_max)
