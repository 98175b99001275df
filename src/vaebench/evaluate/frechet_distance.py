"""Fréchet distance between two sets of feature vectors, each summarised by a Gaussian.

For N(mu1, S1) and N(mu2, S2) the squared 2-Wasserstein (Fréchet) distance is

    FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

(Dowson & Landau 1982; used on Inception features as "FID" by Heusel et al. 2017, "GANs
Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
arXiv:1706.08500). This module computes it in whatever feature space it is given; the
sample-quality stage uses its own classifier's, so its numbers are not FIDs.

Tr (S1 S2)^(1/2) is taken as the sum of the square roots of the eigenvalues of the
symmetric matrix S1^(1/2) S2 S1^(1/2) (it has the eigenvalues of S1 S2): real and
non-negative by construction, where a general matrix square root of S1 S2 can return
complex parts from rounding.
"""
from __future__ import annotations

import numpy as np


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def gaussian_frechet_distance(mu1, s1, mu2, s2) -> float:
    """FD between N(mu1, s1) and N(mu2, s2): means (d,), covariances (d, d)."""
    mu1, mu2 = np.asarray(mu1, float), np.asarray(mu2, float)
    s1, s2 = np.atleast_2d(np.asarray(s1, float)), np.atleast_2d(np.asarray(s2, float))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shapes do not match: means {mu1.shape} and {mu2.shape}, "
                         f"covariances {s1.shape} and {s2.shape}")
    root = _sqrt_psd(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
    fd = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross)
    return max(fd, 0.0)   # rounding can leave -1e-12 where the distance is 0


def moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of features (n, d), n >= 2."""
    x = np.asarray(features, float)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be (n, d) with n >= 2, got shape {x.shape}")
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FD between the Gaussians fitted to feature sets a (n, d) and b (m, d)."""
    return gaussian_frechet_distance(*moments(a), *moments(b))
