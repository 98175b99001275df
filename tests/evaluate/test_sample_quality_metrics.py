"""The Fréchet distance and k-NN precision/recall on hand-made feature sets."""
from __future__ import annotations

import numpy as np
import pytest

from vaebench.evaluate.frechet_distance import frechet_distance, gaussian_frechet_distance
from vaebench.evaluate.precision_recall import knn_radii, precision_recall


def _features(n=500, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d))   # correlated dimensions


def test_fd_of_a_set_with_itself_is_zero():
    x = _features()
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_fd_of_two_diagonal_gaussians_is_the_hand_computed_closed_form():
    # mu1 = (0, 0), S1 = diag(1, 4); mu2 = (1, 2), S2 = diag(4, 9):
    # |mu1 - mu2|^2 = 1 + 4 = 5; Tr(S1 + S2) = 5 + 13 = 18; (S1 S2)^1/2 = diag(2, 6), Tr = 8
    # FD = 5 + 18 - 2 * 8 = 7
    mu1, s1, mu2, s2 = [0, 0], np.diag([1.0, 4.0]), [1, 2], np.diag([4.0, 9.0])
    assert gaussian_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(7.0, abs=1e-12)
    # and from samples of the two Gaussians: the same value up to sampling error
    rng = np.random.default_rng(1)
    a = rng.normal(mu1, np.sqrt(np.diag(s1)), size=(200_000, 2))
    b = rng.normal(mu2, np.sqrt(np.diag(s2)), size=(200_000, 2))
    assert frechet_distance(a, b) == pytest.approx(7.0, abs=0.1)


def test_fd_is_symmetric_for_full_covariances_and_invariant_to_a_common_translation():
    a, b = _features(seed=0), _features(seed=1) + 0.5
    shift = np.array([3.0, -7.0, 100.0, 0.25])
    assert frechet_distance(a, b) > 0.1
    assert frechet_distance(b, a) == pytest.approx(frechet_distance(a, b), rel=1e-9)
    assert frechet_distance(a + shift, b + shift) == pytest.approx(frechet_distance(a, b),
                                                                   rel=1e-9)


def test_fd_rejects_too_few_points_or_mismatched_dimensions():
    with pytest.raises(ValueError, match="n >= 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="shapes do not match"):
        frechet_distance(np.ones((5, 3)) * np.arange(5)[:, None], _features(d=2))


def test_precision_and_recall_are_one_for_identical_sets():
    x = _features(n=200)
    assert precision_recall(x, x.copy(), k=3) == {"precision": 1.0, "recall": 1.0}


def test_precision_and_recall_vanish_for_far_apart_sets():
    x = _features(n=200)
    assert precision_recall(x + 1e3, x, k=3) == {"precision": 0.0, "recall": 0.0}


def test_hand_worked_one_dimensional_example_with_k_1():
    real = np.array([[0.0], [1.0], [3.0], [20.0]])
    fake = np.array([[0.5], [1.5], [2.5], [50.0], [51.0]])
    # k = 1 radii: real 0 -> 1, 1 -> 1, 3 -> 2, 20 -> 17; fake 0.5, 1.5, 2.5, 50, 51 -> 1 each
    np.testing.assert_allclose(knn_radii(real, 1), [1, 1, 2, 17])
    np.testing.assert_allclose(knn_radii(fake, 1), [1, 1, 1, 1, 1])
    # precision: 0.5 (ball of 0), 1.5 (of 1), 2.5 (of 3) inside; 50 and 51 are > 17 from 20
    # recall: 0, 1, 3 lie within 1 of 0.5 / 1.5 / 2.5; 20 is 17.5 from 2.5, 30 from 50
    assert precision_recall(fake, real, k=1) == {"precision": pytest.approx(3 / 5),
                                                 "recall": pytest.approx(3 / 4)}


def test_knn_radii_need_more_than_k_points():
    with pytest.raises(ValueError, match="k = 3 needs at least k \\+ 1 = 4 points, got 3"):
        knn_radii(np.zeros((3, 2)), 3)
