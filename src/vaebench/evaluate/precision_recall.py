"""Precision and recall of a generated distribution with k-NN manifolds (Kynkäänniemi et
al. 2019, "Improved Precision and Recall Metric for Assessing Generative Models",
arXiv:1904.06991).

The manifold of a feature set is the union of balls around its points, each ball's
radius the distance to that point's k-th nearest neighbour in the same set. Precision:
the fraction of generated points inside the manifold of the real ones (are the samples
realistic?); recall: the fraction of real points inside the manifold of the generated
ones (is the real distribution covered?). Both are in [0, 1]; the paper uses k = 3.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance of every point (n, d) to its k-th nearest neighbour among the others. # (n,)"""
    x = np.asarray(features, float)
    if not 1 <= k < len(x):
        raise ValueError(f"k = {k} needs at least k + 1 = {k + 1} points, got {len(x)}")
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return dist[:, k]           # column 0 is the point itself (distance 0)


def in_manifold(queries: np.ndarray, support: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Whether each query (m, d) lies in some ball (support (n, d), radii (n,)).  # (m,)"""
    inside = [(block <= radii[None, :]).any(1)
              for block in pairwise_distances_chunked(np.asarray(queries, float),
                                                      np.asarray(support, float))]
    return np.concatenate(inside)


def precision_recall(generated: np.ndarray, real: np.ndarray, k: int = 3) -> dict[str, float]:
    """{'precision', 'recall'} of generated features (m, d) against real features (n, d)."""
    generated, real = np.asarray(generated, float), np.asarray(real, float)
    if generated.ndim != 2 or real.ndim != 2 or generated.shape[1] != real.shape[1]:
        raise ValueError(f"features must be (n, d) with the same d, got {generated.shape} "
                         f"and {real.shape}")
    precision = in_manifold(generated, real, knn_radii(real, k)).mean()
    recall = in_manifold(real, generated, knn_radii(generated, k)).mean()
    return {"precision": float(precision), "recall": float(recall)}
