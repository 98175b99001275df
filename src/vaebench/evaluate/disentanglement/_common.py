"""Shared helpers of the disentanglement metrics: validation, sampling, binning, MI.

Every metric samples ground-truth factors uniformly per column, maps them to
codes with ``codes_fn`` and then works on plain arrays; the helpers below keep
those steps identical across metrics.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.metrics import mutual_info_score

# codes_fn renders and encodes images in the pipeline; a bounded number of rows
# per call keeps its memory flat even when a metric needs ~1e6 codes.
CHUNK_ROWS = 10_000


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_rng(rng) -> None:
    # Only a Generator makes the metric reproducible from the caller's seed.
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def check_nonnegative_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < np.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_factor_sizes(factor_sizes) -> tuple[int, ...]:
    sizes = tuple(factor_sizes)
    if not sizes:
        raise ValueError("factor_sizes must name at least one factor")
    # A factor with a single value has no entropy: nothing to disentangle.
    for j, size in enumerate(sizes):
        check_positive_int(f"factor_sizes[{j}]", size, minimum=2)
    return tuple(int(s) for s in sizes)


def check_arrays(codes, factors, name: str = "codes") -> tuple[np.ndarray, np.ndarray]:
    """Return (codes (n, D) float, factors (n, F) int) after shape checks."""
    codes = np.asarray(codes, dtype=float)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors) or len(codes) == 0:
        raise ValueError(f"{name} must be (n, D) and factors (n, F) with the same n > 0, "
                         f"got shapes {codes.shape} and {factors.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError(f"{name} contain non-finite values")
    return codes, factors.astype(np.int64)


def check_split(codes_train, factors_train, codes_test, factors_test):
    """check_arrays on a train and a test split that must agree on D and F."""
    codes_train, factors_train = check_arrays(codes_train, factors_train, "codes_train")
    codes_test, factors_test = check_arrays(codes_test, factors_test, "codes_test")
    if codes_train.shape[1] != codes_test.shape[1] or factors_train.shape[1] != factors_test.shape[1]:
        raise ValueError(f"train and test splits disagree on D or F: {codes_train.shape}, "
                         f"{factors_train.shape} vs {codes_test.shape}, {factors_test.shape}")
    return codes_train, factors_train, codes_test, factors_test


def sample_factors(factor_sizes, n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform factor class indices, column j in range(factor_sizes[j]).  # (n, F)"""
    return rng.integers(0, np.asarray(factor_sizes), size=(n, len(factor_sizes)))


def encode(codes_fn, factors: np.ndarray) -> np.ndarray:
    """codes_fn applied in chunks of CHUNK_ROWS rows.  # (n, F) -> (n, D)"""
    parts = []
    for start in range(0, len(factors), CHUNK_ROWS):
        chunk = factors[start:start + CHUNK_ROWS]
        codes = np.asarray(codes_fn(chunk), dtype=float)
        if codes.ndim != 2 or len(codes) != len(chunk):
            raise ValueError(f"codes_fn must return an (n, D) array for n={len(chunk)} factors, "
                             f"got shape {codes.shape}")
        parts.append(codes)
    return np.concatenate(parts, axis=0)


def sample_codes(codes_fn, factor_sizes, n: int, rng: np.random.Generator):
    """Draw n uniform factors and their codes: (codes (n, D), factors (n, F))."""
    factors = sample_factors(factor_sizes, n, rng)
    return encode(codes_fn, factors), factors


def seed_from(rng: np.random.Generator) -> int:
    """An int seed for a sklearn estimator, drawn from the metric's rng."""
    return int(rng.integers(2**31 - 1))


def discretize(codes: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width histogram bin index (1..n_bins) of every code dimension.  # (n, D)"""
    out = np.empty(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], bins=n_bins)[1]
        # Dropping the last edge puts the maximum into the last bin, not a new one.
        out[:, d] = np.digitize(codes[:, d], edges[:-1])
    return out


def mutual_info_matrix(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) of every code dim with every factor.  # (D, F)"""
    return np.array([
        [mutual_info_score(factors[:, j], discrete_codes[:, i]) for j in range(factors.shape[1])]
        for i in range(discrete_codes.shape[1])
    ])


def entropies(factors: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of every factor column, as I(f; f).  # (F,)"""
    return np.array([mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])])

