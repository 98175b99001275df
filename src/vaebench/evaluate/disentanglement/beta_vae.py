"""BetaVAE score of Higgins et al. 2017, "beta-VAE: Learning Basic Visual
Concepts with a Constrained Variational Framework".

Measures whether the factor held fixed in a batch of pairs can be read off,
by a linear classifier, from the mean absolute code difference of the pairs:
in a disentangled code the dimension of the fixed factor does not move.

Protocol (disentanglement_lib study defaults): every point picks a factor k
uniformly, draws batch_size=64 pairs of uniform factors that share factor k,
and takes feature = mean over the batch of |code1 - code2| (D,), label = k;
num_train=10000 training points, num_eval=5000 evaluation points;
sklearn LogisticRegression with default settings, seeded from rng. The
reported scores are train and eval accuracy; chance level is about 1/F.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from ._common import (
    check_factor_sizes, check_positive_int, check_rng, encode, sample_factors, seed_from,
)


def beta_vae_from_points(features_train, labels_train, features_eval, labels_eval,
                         random_state: int = 0) -> dict[str, float]:
    """Accuracy of a logistic regression from features (n, D) to factor labels (n,)."""
    features_train = np.asarray(features_train, dtype=float)
    features_eval = np.asarray(features_eval, dtype=float)
    if (features_train.ndim != 2 or features_eval.ndim != 2
            or features_train.shape[1] != features_eval.shape[1]):
        raise ValueError("features_train and features_eval must be (n, D) arrays with the same D")
    model = LogisticRegression(random_state=random_state)
    model.fit(features_train, labels_train)
    return {
        "train_accuracy": float(model.score(features_train, labels_train)),
        "eval_accuracy": float(model.score(features_eval, labels_eval)),
    }


def _points(codes_fn, factor_sizes, n: int, batch_size: int, rng: np.random.Generator):
    """n BetaVAE points: features (n, D) and labels (n,)."""
    num_factors = len(factor_sizes)
    labels = rng.integers(num_factors, size=n)  # (n,)
    first = sample_factors(factor_sizes, n * batch_size, rng).reshape(n, batch_size, num_factors)
    second = sample_factors(factor_sizes, n * batch_size, rng).reshape(n, batch_size, num_factors)
    shared = (np.arange(num_factors) == labels[:, None])[:, None, :]  # (n, 1, F)
    second = np.where(shared, first, second)  # pairs agree on factor labels[i]
    codes1 = encode(codes_fn, first.reshape(-1, num_factors))  # (n*B, D)
    codes2 = encode(codes_fn, second.reshape(-1, num_factors))
    features = np.abs(codes1 - codes2).reshape(n, batch_size, -1).mean(axis=1)  # (n, D)
    return features, labels


def compute(codes_fn, factor_sizes, rng: np.random.Generator, *,
            batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000) -> dict[str, float]:
    factor_sizes = check_factor_sizes(factor_sizes)
    check_rng(rng)
    if len(factor_sizes) < 2:
        raise ValueError("factor_sizes must name at least two factors to classify between")
    batch_size = check_positive_int("batch_size", batch_size)
    num_train = check_positive_int("num_train", num_train)
    num_eval = check_positive_int("num_eval", num_eval)
    features_train, labels_train = _points(codes_fn, factor_sizes, num_train, batch_size, rng)
    features_eval, labels_eval = _points(codes_fn, factor_sizes, num_eval, batch_size, rng)
    return beta_vae_from_points(features_train, labels_train, features_eval, labels_eval,
                                random_state=seed_from(rng))
