"""DCI Disentanglement, Completeness and Informativeness of Eastwood & Williams
2018, "A Framework for the Quantitative Evaluation of Disentangled
Representations".

One classifier per factor predicts the factor from all codes; its feature
importances form a matrix R (D x F). Disentanglement: how much each code
dimension is devoted to a single factor (1 - entropy base F of each row of R,
weighted by the row's share rho_i of total importance). Completeness: how much
each factor is captured by a single dimension (1 - entropy base D of each
column, averaged over factors). Informativeness: classifier accuracy.

Protocol (disentanglement_lib study defaults): num_train=10000, num_test=5000
uniform samples; sklearn GradientBoostingClassifier with default settings
(n_estimators=100 boosting stages), seeded from rng; importances =
|feature_importances_|. Each stage fits one tree per class, so the cost grows
with n_estimators times the total number of factor classes (113 on dSprites);
n_estimators is a parameter so that a quick profile can cut it. Completeness is the
plain mean over factors (disentanglement_lib weights by column share, which is
the same whenever every classifier has a non-zero importance, as its
importances then sum to 1). An all-zero row or column (nothing learned) counts
as uniform: entropy 1, score 0.

Cost: the fits are the whole cost (~11,300 trees on 10,000 points at the
protocol sizes on dSprites). They are independent, so they run in n_jobs
threads (the tree building releases the GIL), largest factor first; every fit
is the same estimator with the same seed as in a serial loop, so the scores do
not depend on n_jobs. scikit-learn's HistGradientBoostingClassifier would be
faster but has no impurity-based importances (its private per-node gains are
Newton gains on binned codes, a different quantity: D and C move by up to 0.025
on reference codes, see benchmarks/dci_hist_gradient_boosting.py), so it is
not used.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.utils.parallel import Parallel, delayed  # joblib's, carrying sklearn's config

from ._common import (
    check_factor_sizes, check_positive_int, check_rng, check_split, sample_codes, seed_from,
)


def check_n_jobs(n_jobs) -> int:
    """n_jobs as joblib reads it: a positive number of threads, or -1 for every core."""
    if n_jobs == -1 and not isinstance(n_jobs, bool):
        return -1
    return check_positive_int("n_jobs (or -1: every available core)", n_jobs)


def _one_minus_entropy(p: np.ndarray) -> np.ndarray:
    """1 - normalised entropy (base = number of entries) of each row of p.  # (rows,)"""
    k = p.shape[1]
    if k == 1:
        return np.ones(len(p))  # a single outcome carries no uncertainty
    totals = p.sum(axis=1, keepdims=True)
    p = np.where(totals > 0, p / np.where(totals > 0, totals, 1), 1.0 / k)
    logs = np.log(np.where(p > 0, p, 1.0))  # 0 log 0 = 0
    # Clipped so that float rounding of a uniform row reads 0, not -1e-16.
    return np.clip(1.0 + np.sum(p * logs, axis=1) / np.log(k), 0.0, 1.0)


def disentanglement_completeness(importance: np.ndarray) -> tuple[float, float]:
    """DCI disentanglement and completeness of an importance matrix R (D, F)."""
    importance = np.abs(np.asarray(importance, dtype=float))
    total = importance.sum()
    rho = importance.sum(axis=1) / total if total > 0 else np.zeros(len(importance))  # (D,)
    disentanglement = float(np.sum(rho * _one_minus_entropy(importance)))
    completeness = float(np.mean(_one_minus_entropy(importance.T)))
    return disentanglement, completeness


def _fit_factor(codes_train, labels_train, codes_test, labels_test, random_state: int,
                n_estimators: int) -> tuple[np.ndarray, float, float]:
    """One factor's classifier: (|importances| (D,), train accuracy, test accuracy)."""
    model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=random_state)
    model.fit(codes_train, labels_train)
    return (np.abs(model.feature_importances_), model.score(codes_train, labels_train),
            model.score(codes_test, labels_test))


def dci_from_arrays(codes_train, factors_train, codes_test, factors_test,
                    random_state: int = 0, n_estimators: int = 100,
                    n_jobs: int = -1) -> dict[str, float]:
    """DCI of codes (n, D) for integer factors (n, F), train and test split; the
    per-factor fits run in n_jobs threads (-1: every available core)."""
    codes_train, factors_train, codes_test, factors_test = check_split(
        codes_train, factors_train, codes_test, factors_test)
    n_jobs = check_n_jobs(n_jobs)
    # A fit costs about one tree per class and stage (one for a binary factor):
    # starting the largest factors first keeps the threads evenly loaded.
    num_classes = [len(np.unique(y)) for y in factors_train.T]
    order = sorted(range(len(num_classes)), key=lambda j: -num_classes[j])
    fitted = Parallel(n_jobs=n_jobs, backend="threading")(
        delayed(_fit_factor)(codes_train, factors_train[:, j], codes_test, factors_test[:, j],
                             random_state, n_estimators) for j in order)
    by_factor = dict(zip(order, fitted))
    importance, acc_train, acc_test = (np.array(column) for column in zip(
        *(by_factor[j] for j in range(len(order)))))
    importance = importance.T  # (D, F)
    disentanglement, completeness = disentanglement_completeness(importance)
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness_train": float(np.mean(acc_train)),
        "informativeness_test": float(np.mean(acc_test)),
    }


def compute(codes_fn, factor_sizes, rng: np.random.Generator, *,
            num_train: int = 10000, num_test: int = 5000,
            n_estimators: int = 100) -> dict[str, float]:
    """DCI at the protocol sizes; the fits use every available core (the scores do
    not depend on it, see dci_from_arrays)."""
    factor_sizes = check_factor_sizes(factor_sizes)
    check_rng(rng)
    num_train = check_positive_int("num_train", num_train)
    num_test = check_positive_int("num_test", num_test)
    n_estimators = check_positive_int("n_estimators", n_estimators)
    codes_train, factors_train = sample_codes(codes_fn, factor_sizes, num_train, rng)
    codes_test, factors_test = sample_codes(codes_fn, factor_sizes, num_test, rng)
    return dci_from_arrays(codes_train, factors_train, codes_test, factors_test,
                           random_state=seed_from(rng), n_estimators=n_estimators)
