"""The MMD^2 U-statistic (models/mmd.py): hand computations, zero and growth, symmetry, bias.

Bound used below. With kernel values in [0, 1], the paired two-sample U-statistic
(n = m) is a mean over pairs i != j of h = k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i),
h in [-2, 2]. Under P = Q it is degenerate (its first-order projection is 0), so
Var = 2 Var(h) / (n (n - 1)) <= 8 / (n (n - 1)): a standard deviation of at most
sqrt(8 / (n (n - 1))) ~ 2.83 / n. The estimator here averages the cross term over all
n m pairs, which adds (2/n) (mean_{i != j} k(x_i, y_j) - mean_i k(x_i, y_i)): zero mean,
standard deviation O(n^-1.5). The tests allow 5 bounds (the measured standard deviation
at n = 400, 2-D, imq: 0.0012 against the bound 0.0071).
"""
from __future__ import annotations

import math

import pytest
import torch

from vaebench.models.mmd import kernel_scale, mmd2, mmd_to_standard_normal


def _sd_bound(n: int) -> float:
    return math.sqrt(8 / (n * (n - 1)))


def _col(values):
    return torch.tensor(values, dtype=torch.float64)[:, None]        # (n, 1): 1-D points


def test_imq_by_hand_on_two_points_each():
    """x = {0, 1}, y = {3, 4}, C = 1, k = 1 / (1 + r^2):
    within x: k(0, 1) = 1/2 (both ordered pairs, / 2)          -> 1/2
    within y: k(3, 4) = 1/2                                     -> 1/2
    cross: k(0,3) + k(0,4) + k(1,3) + k(1,4) = 1/10 + 1/17 + 1/5 + 1/10, / 4, times 2
    MMD^2 = 1 - (2/5 + 1/17) / 2 = 0.8 - 1/34."""
    assert mmd2(_col([0, 1]), _col([3, 4]), "imq", 1.0).item() == pytest.approx(0.8 - 1 / 34)


def test_imq_by_hand_can_be_negative_with_c_from_the_wae_scale():
    """C = 2 d sigma^2 = 2 (d = 1, sigma = 1); x = {0, 1}, y = {0, 2}, k = 2 / (2 + r^2):
    within x: k(0, 1) = 2/3; within y: k(0, 2) = 2/6 = 1/3;
    cross: k(0,0) + k(0,2) + k(1,0) + k(1,2) = 1 + 1/3 + 2/3 + 2/3 = 8/3, / 4 = 2/3, times 2
    MMD^2 = 2/3 + 1/3 - 4/3 = -1/3 (unbiased: one estimate may fall below 0)."""
    c = kernel_scale(1, 1.0)
    assert c == 2.0
    assert mmd2(_col([0, 1]), _col([0, 2]), "imq", c).item() == pytest.approx(-1 / 3)


def test_rbf_by_hand_on_two_and_three_points():
    """C = 1, k = exp(-r^2).
    x = {0, 1}, y = {3, 4}: e^-1 + e^-1 - 2 (e^-9 + e^-16 + e^-4 + e^-9) / 4.
    x = {0, 1, 2}, y = {0, 2}: within x the pairs (0,1), (0,2), (1,2) give
    (e^-1 + e^-4 + e^-1) / 3; within y e^-4; cross (0,0) (0,2) (1,0) (1,2) (2,0) (2,2) give
    (1 + e^-4 + e^-1 + e^-1 + e^-4 + 1) / 6, times 2."""
    e = math.exp
    two = 2 * e(-1) - (2 * e(-9) + e(-16) + e(-4)) / 2
    assert mmd2(_col([0, 1]), _col([3, 4]), "rbf", 1.0).item() == pytest.approx(two)
    three = (2 * e(-1) + e(-4)) / 3 + e(-4) - 2 * (2 + 2 * e(-4) + 2 * e(-1)) / 6
    assert mmd2(_col([0, 1, 2]), _col([0, 2]), "rbf", 1.0).item() == pytest.approx(three)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_symmetric_and_near_zero_for_one_distribution(kernel):
    gen = torch.Generator().manual_seed(0)
    n, d = 400, 2
    x, y = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    c = kernel_scale(d, 1.0)
    assert mmd2(x, y, kernel, c).item() == pytest.approx(mmd2(y, x, kernel, c).item(), abs=1e-6)
    assert abs(mmd2(x, y, kernel, c).item()) < 5 * _sd_bound(n)       # 0.035


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_positive_and_growing_with_the_shift(kernel):
    gen = torch.Generator().manual_seed(1)
    n, d = 400, 2
    x, y = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    c = kernel_scale(d, 1.0)
    values = [mmd2(x, y + torch.tensor([s, 0.0]), kernel, c).item() for s in (1.0, 2.0, 4.0)]
    assert values[0] > 5 * _sd_bound(n)                                 # detected beyond the noise
    assert values[0] < values[1] < values[2]


def test_unbiased_mean_over_many_draws_is_zero_unlike_the_v_statistic():
    """2000 estimates on n = 8 points each: their mean is within 5 standard errors of 0
    (se <= sd_bound(8) / sqrt(2000) = 0.0067). The V-statistic, which keeps the diagonal
    k(x_i, x_i) = 1, is biased upwards by about 2 (1 - E k(x, x')) / n and fails it."""
    gen = torch.Generator().manual_seed(2)
    reps, n, d = 2000, 8, 2
    c = kernel_scale(d, 1.0)
    u, v = [], []
    for _ in range(reps):
        x, y = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
        u.append(mmd2(x, y, "imq", c).item())
        gram = lambda a, b: c / (c + torch.cdist(a, b).pow(2))          # noqa: E731
        v.append((gram(x, x).mean() + gram(y, y).mean() - 2 * gram(x, y).mean()).item())
    se = _sd_bound(n) / math.sqrt(reps)
    assert abs(sum(u) / reps) < 5 * se
    assert sum(v) / reps > 5 * se


def test_bad_input_is_refused_naming_what_is_valid():
    with pytest.raises(ValueError, match="kernel: unknown 'gauss'"):
        mmd2(torch.zeros(3, 2), torch.zeros(3, 2), "gauss")
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd2(torch.zeros(1, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\(n, d\) and \(m, d\)"):
        mmd2(torch.zeros(3, 2), torch.zeros(3, 3))


def test_a_batch_of_one_contributes_nothing():
    assert mmd_to_standard_normal(torch.ones(1, 4), "imq", 1.0).item() == 0.0
