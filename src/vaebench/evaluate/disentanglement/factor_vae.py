"""FactorVAE score of Kim & Mnih 2018, "Disentangling by Factorising".

Measures whether the factor held fixed in a batch can be identified as the
code dimension with the smallest (normalised) variance over the batch: each
batch casts one vote (dimension -> factor), and a majority-vote classifier
(each dimension predicts the factor it voted for most) is scored.

Protocol (disentanglement_lib study defaults): global per-dimension std from
num_variance_estimate=10000 codes of uniform factors; dimensions with
std < prune_threshold=0.05 are inactive and never vote; each vote fixes a
uniformly chosen factor k to one uniform value in a batch of batch_size=64
otherwise uniform factors, divides the codes by the global std and takes the
argmin of the per-dimension variance (ddof=1) over active dimensions;
num_train=10000 and num_eval=5000 votes. With no active dimension the scores
are 0. Chance level is about 1/F. One deliberate detail: a dimension that
never voted in training predicts nothing (counts as wrong) on eval votes.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    check_factor_sizes, check_nonnegative_float, check_positive_int, check_rng, encode,
    sample_codes, sample_factors,
)


def factor_vae_from_points(dims_train, labels_train, dims_eval, labels_eval) -> dict[str, float]:
    """Majority-vote accuracy of votes (voting dimension (n,), fixed factor (n,))."""
    dims_train, labels_train, dims_eval, labels_eval = (
        np.asarray(a, dtype=np.int64) for a in (dims_train, labels_train, dims_eval, labels_eval))
    if (min(len(dims_train), len(dims_eval)) == 0
            or len(dims_train) != len(labels_train) or len(dims_eval) != len(labels_eval)):
        raise ValueError("votes and labels must be non-empty 1-D arrays of equal length")
    num_dims = max(dims_train.max(), dims_eval.max(initial=0)) + 1
    votes = np.zeros((num_dims, labels_train.max() + 1), dtype=np.int64)  # (D, F)
    np.add.at(votes, (dims_train, labels_train), 1)
    # Each dimension predicts its most frequent factor; never-voting ones predict -1.
    prediction = np.where(votes.sum(axis=1) > 0, votes.argmax(axis=1), -1)  # (D,)
    return {
        "train_accuracy": float(np.mean(prediction[dims_train] == labels_train)),
        "eval_accuracy": float(np.mean(prediction[dims_eval] == labels_eval)),
    }


def _votes(codes_fn, factor_sizes, n, batch_size, scale, active, rng):
    """n votes: (argmin dimension (n,), fixed factor (n,))."""
    num_factors = len(factor_sizes)
    labels = rng.integers(num_factors, size=n)  # (n,)
    values = rng.integers(0, np.asarray(factor_sizes)[labels])  # (n,) the shared value
    factors = sample_factors(factor_sizes, n * batch_size, rng).reshape(n, batch_size, num_factors)
    fixed = (np.arange(num_factors) == labels[:, None])[:, None, :]  # (n, 1, F)
    factors = np.where(fixed, values[:, None, None], factors)
    codes = encode(codes_fn, factors.reshape(-1, num_factors)).reshape(n, batch_size, -1)
    variances = np.var(codes[:, :, active] / scale[active], axis=1, ddof=1)  # (n, D_active)
    return np.flatnonzero(active)[variances.argmin(axis=1)], labels


def compute(codes_fn, factor_sizes, rng: np.random.Generator, *,
            batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000,
            num_variance_estimate: int = 10000, prune_threshold: float = 0.05) -> dict[str, float]:
    factor_sizes = check_factor_sizes(factor_sizes)
    check_rng(rng)
    if len(factor_sizes) < 2:
        raise ValueError("factor_sizes must name at least two factors to classify between")
    batch_size = check_positive_int("batch_size", batch_size, minimum=2)  # ddof=1 variance
    num_train = check_positive_int("num_train", num_train)
    num_eval = check_positive_int("num_eval", num_eval)
    num_variance_estimate = check_positive_int(
        "num_variance_estimate", num_variance_estimate, minimum=2)
    prune_threshold = check_nonnegative_float("prune_threshold", prune_threshold)
    codes, _ = sample_codes(codes_fn, factor_sizes, num_variance_estimate, rng)
    scale = np.std(codes, axis=0, ddof=1)  # (D,)
    active = (scale >= prune_threshold) & (scale > 0)  # a zero std cannot normalise
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    dims_train, labels_train = _votes(codes_fn, factor_sizes, num_train, batch_size,
                                      scale, active, rng)
    dims_eval, labels_eval = _votes(codes_fn, factor_sizes, num_eval, batch_size, scale, active, rng)
    scores = factor_vae_from_points(dims_train, labels_train, dims_eval, labels_eval)
    return {**scores, "num_active_dims": float(active.sum())}
