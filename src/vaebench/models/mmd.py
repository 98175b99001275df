"""Maximum mean discrepancy (MMD) between two samples: the regulariser of WAE-MMD
(``wae.py``) and InfoVAE (``info_vae.py``).

For a kernel k, MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y), x, x' ~ P and
y, y' ~ Q independent (Gretton et al. 2012, "A Kernel Two-Sample Test", JMLR 13). From
samples x_1..x_n ~ P and y_1..y_m ~ Q, the unbiased U-statistic is

    1/(n(n-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
    - 2/(nm) sum_{i, j} k(x_i, y_j);

its expectation is MMD^2 (0 for P = Q), so a single estimate can be negative.

Kernels (``kernel``), with the scale C = 2 d sigma^2 of Tolstikhin et al. 2018
("Wasserstein Auto-Encoders", arXiv:1711.01558), d the code dimension and sigma^2
the prior's variance (1 for p(z) = N(0, I)):

    imq  k(x, y) = C / (C + ||x - y||^2)      inverse multiquadratic (the WAE paper's)
    rbf  k(x, y) = exp(-||x - y||^2 / C)      Gaussian
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import PositiveFloat

from vaebench.schema import Strict

KERNELS = {
    "imq": lambda sq, c: c / (c + sq),
    "rbf": lambda sq, c: torch.exp(-sq / c),
}


def kernel_scale(dim: int, sigma: float) -> float:
    """C = 2 d sigma^2."""
    return 2.0 * dim * sigma ** 2


def _gram(x: torch.Tensor, y: torch.Tensor, kernel: str, scale: float) -> torch.Tensor:
    # squared distances written out: torch.cdist's gradient is undefined at distance 0
    sq = (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1)           # (n, m)
    return KERNELS[kernel](sq, scale)


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "imq", scale: float = 1.0) -> torch.Tensor:
    """Unbiased U-statistic of MMD^2 between samples x (n, d) and y (m, d), n, m >= 2."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel: unknown {kernel!r}; valid: {', '.join(KERNELS)}")
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd2: samples must be (n, d) and (m, d), got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"mmd2: the U-statistic needs at least 2 points per sample, got {n} and {m}")
    kxx, kyy = _gram(x, x, kernel, scale), _gram(y, y, kernel, scale)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2 * _gram(x, y, kernel, scale).mean()


class MMDOptions(Strict):
    """Keys of a family regularised by the MMD between its codes and N(0, I)."""

    kernel: Literal["imq", "rbf"] = "imq"
    kernel_sigma: PositiveFloat = 1.0   # sigma in C = 2 d sigma^2 (1: the prior's own)


def mmd_to_standard_normal(z: torch.Tensor, kernel: str, sigma: float) -> torch.Tensor:
    """MMD^2 between codes z (B, D) and B draws of N(0, I) (the global RNG).

    A batch of one has no U-statistic; its term is 0 (the training loop's last
    batch can be that small)."""
    if len(z) < 2:
        return z.new_zeros(())
    return mmd2(z, torch.randn_like(z), kernel, kernel_scale(z.shape[-1], sigma))
