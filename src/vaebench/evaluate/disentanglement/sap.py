"""SAP (Separated Attribute Predictability) score of Kumar et al. 2018,
"Variational Inference of Disentangled Latent Concepts from Unlabeled
Observations".

For every (code dimension, factor) pair a classifier predicts the factor from
that single dimension; SAP is the mean over factors of the gap between the best
and the second-best dimension's test accuracy. High when each factor is
predictable from one dimension only.

Protocol (disentanglement_lib study defaults): num_train=10000, num_test=5000
uniform samples; sklearn LinearSVC(C=svm_c, class_weight="balanced") per pair
with svm_c=0.01, seeded from rng; score = test accuracy. A one-vs-rest linear classifier on one
dimension cuts the line into intervals and separates only the extreme values
of an ordered factor from the rest, so a factor with many values stays far
from accuracy 1 even in a perfect code, while an uninformative runner-up still
scores about chance (1/K): the top of SAP's range is well below 1 (see the
tests). C=0.01 is a penalty per sample on unscaled codes, so the score also
depends on the code's scale and on num_train. With a single code dimension
there is no runner-up and the gap is the best accuracy itself.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import LinearSVC

from ._common import (
    check_factor_sizes, check_nonnegative_float, check_positive_int, check_rng, check_split,
    sample_codes, seed_from,
)


def sap_score_matrix(codes_train, factors_train, codes_test, factors_test,
                     random_state: int = 0, svm_c: float = 0.01) -> np.ndarray:
    """Test accuracy of a one-dimension LinearSVC for every pair.  # (D, F)"""
    scores = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    for i in range(codes_train.shape[1]):
        for j in range(factors_train.shape[1]):
            model = LinearSVC(C=svm_c, class_weight="balanced", random_state=random_state)
            model.fit(codes_train[:, i:i + 1], factors_train[:, j])
            scores[i, j] = model.score(codes_test[:, i:i + 1], factors_test[:, j])
    return scores


def sap_from_arrays(codes_train, factors_train, codes_test, factors_test,
                    random_state: int = 0, svm_c: float = 0.01) -> dict[str, float]:
    """SAP of codes (n, D) for integer factors (n, F), train and test split."""
    arrays = check_split(codes_train, factors_train, codes_test, factors_test)
    scores = np.sort(sap_score_matrix(*arrays, random_state=random_state, svm_c=svm_c),
                     axis=0)  # (D, F)
    second = scores[-2] if len(scores) > 1 else np.zeros(scores.shape[1])
    return {"sap": float(np.mean(scores[-1] - second))}


def compute(codes_fn, factor_sizes, rng: np.random.Generator, *,
            num_train: int = 10000, num_test: int = 5000, svm_c: float = 0.01) -> dict[str, float]:
    factor_sizes = check_factor_sizes(factor_sizes)
    check_rng(rng)
    num_train = check_positive_int("num_train", num_train)
    num_test = check_positive_int("num_test", num_test)
    svm_c = check_nonnegative_float("svm_c", svm_c)
    if svm_c == 0:
        raise ValueError("svm_c must be > 0 (the LinearSVC regularisation C), got 0")
    codes_train, factors_train = sample_codes(codes_fn, factor_sizes, num_train, rng)
    codes_test, factors_test = sample_codes(codes_fn, factor_sizes, num_test, rng)
    return sap_from_arrays(codes_train, factors_train, codes_test, factors_test,
                           random_state=seed_from(rng), svm_c=svm_c)
