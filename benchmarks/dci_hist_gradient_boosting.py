"""Would scikit-learn's HistGradientBoostingClassifier do for DCI? Information only.

DCI (Eastwood & Williams 2018) uses GradientBoostingClassifier's impurity-based
``feature_importances_`` (variance decrease of the gradients, summed over every
tree's splits). HistGradientBoostingClassifier has no such attribute; the closest
it stores are the private per-node Newton gains of its trees (on codes binned
into 255 bins), a different quantity. This script fits both with matched
settings (100 stages, learning rate 0.1, depth 3, min 1 sample per leaf, no
regularisation or early stopping), takes HGB's summed gains per dimension as R,
and prints D, C, I and CPU seconds of each on reference codes of factor sizes
(3, 4, 5, 4) -- perfect, rotated (two 2-D rotations), perfect + 2 noise dims --
and on the synthetic dSprites code of benchmarks/disentangle_cost.py.

Usage: OMP_NUM_THREADS=1 python benchmarks/dci_hist_gradient_boosting.py [--n 2000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from disentangle_cost import FACTOR_SIZES, TimedCodes
from vaebench.evaluate.disentanglement.dci import dci_from_arrays, disentanglement_completeness

SIZES = (3, 4, 5, 4)


def reference_codes(kind: str, factors: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    c, s = np.cos(0.6), np.sin(0.6)
    if kind == "rotated":
        return factors @ np.kron(np.eye(2), np.array([[c, -s], [s, c]]))
    if kind == "noise_dims":
        return np.hstack([factors, gen.normal(size=(len(factors), 2))])
    return factors.astype(float)


def hgb_gain_importance(model: HistGradientBoostingClassifier, num_dims: int) -> np.ndarray:
    """Summed split gains per code dimension over every tree (private attributes)."""
    gains = np.zeros(num_dims)
    for stage in model._predictors:
        for tree in stage:
            splits = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
            np.add.at(gains, splits["feature_idx"], splits["gain"])
    return gains


def hgb_dci(codes_train, factors_train, codes_test, factors_test) -> dict[str, float]:
    importance, accuracy = [], []
    for j in range(factors_train.shape[1]):
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, max_depth=3, max_leaf_nodes=None, min_samples_leaf=1,
            l2_regularization=0.0, early_stopping=False, random_state=0)
        model.fit(codes_train, factors_train[:, j])
        importance.append(hgb_gain_importance(model, codes_train.shape[1]))
        accuracy.append(model.score(codes_test, factors_test[:, j]))
    d, c = disentanglement_completeness(np.array(importance).T)
    return {"disentanglement": d, "completeness": c, "informativeness_test": float(np.mean(accuracy))}


def cases(n: int):
    gen = np.random.default_rng(0)
    for kind in ("perfect", "rotated", "noise_dims"):
        f_train = gen.integers(0, SIZES, size=(n, len(SIZES)))
        f_test = gen.integers(0, SIZES, size=(n // 2, len(SIZES)))
        yield kind, (reference_codes(kind, f_train, gen), f_train,
                     reference_codes(kind, f_test, gen), f_test)
    codes_fn = TimedCodes()
    f_train = gen.integers(0, FACTOR_SIZES, size=(n, len(FACTOR_SIZES)))
    f_test = gen.integers(0, FACTOR_SIZES, size=(n // 2, len(FACTOR_SIZES)))
    yield "dsprites_linear", (codes_fn(f_train), f_train, codes_fn(f_test), f_test)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="training points (test: half)")
    args = ap.parse_args()
    keys = ("disentanglement", "completeness", "informativeness_test")
    print(f"{'case':<16} {'estimator':<5} {'D':>7} {'C':>7} {'I_test':>7} {'cpu_s':>7}")
    for kind, arrays in cases(args.n):
        for name, fit in (("GBC", lambda a: dci_from_arrays(*a, n_jobs=1)), ("HGB", lambda a: hgb_dci(*a))):
            cpu = time.process_time()
            result = fit(arrays)
            cpu = time.process_time() - cpu
            print(f"{kind:<16} {name:<5} " + " ".join(f"{result[k]:7.4f}" for k in keys)
                  + f" {cpu:7.1f}", flush=True)


if __name__ == "__main__":
    main()
