"""Modularity and Explicitness of Ridgeway & Mozer 2018, "Learning Deep
Disentangled Embeddings with the F-Statistic Loss" (arXiv:1802.05312).

Modularity: whether each code dimension depends on at most one factor. For
dimension i with mutual information theta_ij to factor j and top factor k,
delta_i = sum_{j != k} theta_ij^2 / (theta_ik^2 (F - 1)) and the dimension
scores 1 - delta_i (0 when it carries no information); the score is the mean
over dimensions. Explicitness: whether the factors can be read off the whole
code linearly: ROC-AUC of a logistic regression per factor, averaged over the
factor's classes (one-vs-rest) and then over factors (0.5 = chance).

Protocol (disentanglement_lib study defaults): num_train=10000, num_test=5000
uniform samples; modularity on the training codes discretised into 20
equal-width histogram bins per dimension, plug-in MI via
sklearn.metrics.mutual_info_score (unnormalised, as in the reference); sklearn
LogisticRegression with default settings, seeded from rng, fitted on the
codes standardised with the TRAINING codes' mean and (population) standard
deviation, applied to both splits, as disentanglement_lib does. Without it the
L2 penalty would make explicitness depend on each dimension's scale. A
dimension that is constant on the training codes has no std to divide by (the
reference divides anyway and gets NaN/inf); it is only centred here
(sklearn's StandardScaler rule), so it carries no information, as it should.
Classes absent from an evaluated split are skipped in the AUC.
Modularity uses unnormalised MI, whose plug-in bias grows with a factor's
number of values: an uninformative code scores well above 0 (see the tests).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from ._common import (
    check_factor_sizes, check_positive_int, check_rng, check_split, discretize, mutual_info_matrix,
    sample_codes, seed_from,
)


def modularity_from_mi(mi: np.ndarray) -> float:
    """Modularity of a mutual information matrix (D, F)."""
    squared = np.asarray(mi, dtype=float) ** 2  # (D, F)
    top = squared.max(axis=1)  # (D,)
    others = squared.sum(axis=1) - top
    num_factors = squared.shape[1]
    safe_top = np.where(top > 0, top, 1.0)
    delta = others / (safe_top * (num_factors - 1)) if num_factors > 1 else np.zeros_like(top)
    return float(np.mean(np.where(top > 0, 1.0 - delta, 0.0)))


def _mean_auc(labels: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean one-vs-rest ROC-AUC over the classes present in labels (n,)."""
    aucs = [roc_auc_score(labels == c, proba[:, k])
            for k, c in enumerate(classes) if 0 < np.sum(labels == c) < len(labels)]
    return float(np.mean(aucs)) if aucs else float("nan")


def modularity_explicitness_from_arrays(codes_train, factors_train, codes_test, factors_test,
                                        n_bins: int = 20, random_state: int = 0) -> dict[str, float]:
    """Modularity (train codes) and explicitness (train/test) of codes (n, D)."""
    n_bins = check_positive_int("n_bins", n_bins)
    codes_train, factors_train, codes_test, factors_test = check_split(
        codes_train, factors_train, codes_test, factors_test)
    modularity = modularity_from_mi(mutual_info_matrix(discretize(codes_train, n_bins), factors_train))
    scaler = StandardScaler().fit(codes_train)
    codes_train, codes_test = scaler.transform(codes_train), scaler.transform(codes_test)
    auc_train, auc_test = [], []
    for y_train, y_test in zip(factors_train.T, factors_test.T):
        model = LogisticRegression(random_state=random_state).fit(codes_train, y_train)
        auc_train.append(_mean_auc(y_train, model.predict_proba(codes_train), model.classes_))
        auc_test.append(_mean_auc(y_test, model.predict_proba(codes_test), model.classes_))
    return {
        "modularity": modularity,
        "explicitness_train": float(np.mean(auc_train)),
        "explicitness_test": float(np.mean(auc_test)),
    }


def compute(codes_fn, factor_sizes, rng: np.random.Generator, *,
            num_train: int = 10000, num_test: int = 5000, n_bins: int = 20) -> dict[str, float]:
    factor_sizes = check_factor_sizes(factor_sizes)
    check_rng(rng)
    num_train = check_positive_int("num_train", num_train)
    num_test = check_positive_int("num_test", num_test)
    n_bins = check_positive_int("n_bins", n_bins)
    codes_train, factors_train = sample_codes(codes_fn, factor_sizes, num_train, rng)
    codes_test, factors_test = sample_codes(codes_fn, factor_sizes, num_test, rng)
    return modularity_explicitness_from_arrays(codes_train, factors_train, codes_test, factors_test,
                                               n_bins=n_bins, random_state=seed_from(rng))
