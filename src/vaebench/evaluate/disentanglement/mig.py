"""Mutual Information Gap (MIG) of Chen et al. 2018, "Isolating Sources of
Disentanglement in Variational Autoencoders".

For every ground-truth factor, MIG measures how much more information the most
informative code dimension carries about it than the runner-up, relative to the
factor's entropy; the score is the mean over factors (1 = each factor lives in
exactly one dimension, 0 = no dimension singles a factor out).

Protocol (disentanglement_lib study defaults): num_train=10000 uniform factor
samples; every code dimension discretised into an equal-width 20-bin histogram
(np.histogram edges per dimension); plug-in MI via
sklearn.metrics.mutual_info_score. Because of the binning a factor with more
than n_bins values (dSprites orientation 40, positions 32) cannot reach 1 even
for a perfect code: its top MI is the entropy of the binned factor, not of the
factor.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    check_arrays, check_factor_sizes, check_positive_int, check_rng, discretize, entropies,
    mutual_info_matrix, sample_codes,
)


def mig_from_arrays(codes, factors, n_bins: int = 20) -> dict[str, float]:
    """MIG of codes (n, D) for integer factors (n, F)."""
    n_bins = check_positive_int("n_bins", n_bins)
    codes, factors = check_arrays(codes, factors)
    mi = mutual_info_matrix(discretize(codes, n_bins), factors)  # (D, F)
    h = entropies(factors)  # (F,)
    if np.any(h <= 0):
        raise ValueError("every factor must take at least two values in the sample")
    top = np.sort(mi, axis=0)[::-1]  # (D, F), descending per factor
    # A single code dimension has no runner-up: its gap is its whole MI.
    second = top[1] if len(top) > 1 else np.zeros_like(top[0])
    return {"mig": float(np.mean((top[0] - second) / h))}


def compute(codes_fn, factor_sizes, rng: np.random.Generator, *,
            num_train: int = 10000, n_bins: int = 20) -> dict[str, float]:
    factor_sizes = check_factor_sizes(factor_sizes)
    check_rng(rng)
    num_train = check_positive_int("num_train", num_train)
    n_bins = check_positive_int("n_bins", n_bins)
    codes, factors = sample_codes(codes_fn, factor_sizes, num_train, rng)
    return mig_from_arrays(codes, factors, n_bins=n_bins)
