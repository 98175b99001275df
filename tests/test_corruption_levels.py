"""The corruption processes hit the requested fraction / sigma (vaebench.corruptions).

Tolerances are statistical: with n independent pixels a fraction is within
5 standard errors sqrt(p (1 - p) / n) of p except with probability < 1e-6.
"""
import math

import pytest
import torch

from vaebench.corruptions import CORRUPTIONS

N_PIX = 64 * 784


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _tol(p, n=N_PIX):
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-12


@pytest.mark.parametrize("level", [0.05, 0.3, 0.75])
def test_masking_zeroes_the_requested_fraction(level):
    x = torch.ones(64, 1, 28, 28)
    xt = CORRUPTIONS["masking"](x, level, _gen())
    zeroed = (xt == 0).float().mean().item()
    assert abs(zeroed - level) < _tol(level)
    assert set(xt.unique().tolist()) <= {0.0, 1.0}          # untouched pixels keep their value


@pytest.mark.parametrize("sigma", [0.02, 0.1])
def test_gaussian_noise_has_the_requested_sigma(sigma):
    x = torch.full((64, 1, 28, 28), 0.5)                    # 0.5 / sigma >= 5 sd: no clipping
    noise = CORRUPTIONS["gaussian"](x, sigma, _gen()) - x
    # sample sd of n normals: relative standard error 1 / sqrt(2n)
    assert abs(noise.std().item() / sigma - 1) < 5 / math.sqrt(2 * N_PIX)
    assert abs(noise.mean().item()) < 5 * sigma / math.sqrt(N_PIX)


def test_gaussian_noise_is_clipped_to_the_valid_range():
    xt = CORRUPTIONS["gaussian"](torch.rand(16, 1, 28, 28, generator=_gen(1)), 2.0, _gen())
    assert xt.min() >= 0 and xt.max() <= 1
    assert (xt == 0).any() and (xt == 1).any()


@pytest.mark.parametrize("level", [0.1, 0.4])
def test_salt_and_pepper_hits_the_requested_fraction_half_each(level):
    x = torch.full((64, 1, 28, 28), 0.5)
    xt = CORRUPTIONS["salt_pepper"](x, level, _gen())
    salt, pepper = (xt == 1).float().mean().item(), (xt == 0).float().mean().item()
    assert abs(salt + pepper - level) < _tol(level)
    assert abs(salt - level / 2) < _tol(level / 2) and abs(pepper - level / 2) < _tol(level / 2)
    assert ((xt == 0.5) | (xt == 0) | (xt == 1)).all()


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_level_zero_is_the_identity_and_draws_are_seeded(name):
    x = torch.rand(8, 1, 28, 28, generator=_gen(2))
    assert torch.equal(CORRUPTIONS[name](x, 0.0, _gen()), x)
    a, b = CORRUPTIONS[name](x, 0.2, _gen(5)), CORRUPTIONS[name](x, 0.2, _gen(5))
    assert torch.equal(a, b) and not torch.equal(a, CORRUPTIONS[name](x, 0.2, _gen(6)))


@pytest.mark.parametrize("name,level", [("masking", 1.5), ("salt_pepper", -0.1),
                                        ("gaussian", -1.0)])
def test_out_of_range_levels_are_errors(name, level):
    with pytest.raises(ValueError, match=name.split("_")[0]):
        CORRUPTIONS[name](torch.zeros(2, 1, 4, 4), level, _gen())
