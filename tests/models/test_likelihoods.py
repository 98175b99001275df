"""Decoder likelihoods: log densities against their closed forms, the variance floor,
configuration checks."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Distribution, Independent

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config
from vaebench.models.base import ModelConfig
from vaebench.models.likelihoods import LIKELIHOODS

SHAPE = (1, 6, 5)
D = math.prod(SHAPE)


def _cfg(likelihood, **extra):
    return validate_model_config("m", {"family": "vae", "dataset": "mnist", "backbone": "mlp",
                                       "latent_dim": 2, "hidden": [8], "binarize": False,
                                       "likelihood": likelihood, **extra})


def _gaussian_log_prob(x, mean, var):
    """log N(x; mean, diag(var)) summed over the image, by hand: (B,)."""
    return (-0.5 * torch.log(2 * math.pi * var) - (x - mean) ** 2 / (2 * var)).flatten(1).sum(1)


def test_config_literal_lists_the_registry():
    assert set(ModelConfig.model_fields["likelihood"].annotation.__args__) == set(LIKELIHOODS)


def test_bernoulli_is_the_negative_cross_entropy():
    out = torch.randn(3, *SHAPE)
    x = torch.rand(3, *SHAPE).round()
    lp = LIKELIHOODS["bernoulli"](_cfg("bernoulli"))(out).log_prob(x)
    bce = F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
    assert torch.allclose(lp, -bce, atol=1e-5)


def _torch_bernoulli(logits):
    return Independent(Bernoulli(logits=logits), 3)


def test_fused_bernoulli_equals_torch_bernoulli_summed():
    """The fused log-density is torch's per-pixel Bernoulli(logits).log_prob summed over
    the image: on binary images, on grey levels (validation off, as the estimator runs),
    at saturated logits, and with images broadcast against a batch of codes."""
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(5, 3, *SHAPE, generator=g)
    logits[0, 0, 0, 0, :3] = torch.tensor([-60.0, 60.0, 0.0])
    lik = LIKELIHOODS["bernoulli"](_cfg("bernoulli"))
    binary = torch.rand(5, 3, *SHAPE, generator=g).round()
    grey = torch.rand(5, 3, *SHAPE, generator=g)
    for x, validate in ((binary, True), (grey, False)):
        Distribution.set_default_validate_args(validate)
        try:
            fused, ref = lik(logits).log_prob(x), _torch_bernoulli(logits).log_prob(x)
        finally:
            Distribution.set_default_validate_args(True)
        assert fused.shape == ref.shape == (5, 3)
        torch.testing.assert_close(fused, ref, rtol=1e-6, atol=1e-4)
    images = binary[0]                                             # (3, *SHAPE)
    codes = logits[:, :1]                                          # batch (5, 1) of codes
    torch.testing.assert_close(lik(codes).log_prob(images),        # (5, 3), images broadcast
                               _torch_bernoulli(codes).log_prob(images), rtol=1e-6, atol=1e-4)


def test_fused_bernoulli_keeps_torch_interface_and_checks():
    logits = torch.randn(4, *SHAPE)
    d = LIKELIHOODS["bernoulli"](_cfg("bernoulli"))(logits)
    ref = _torch_bernoulli(logits)
    assert (d.batch_shape, d.event_shape) == (ref.batch_shape, ref.event_shape)
    torch.testing.assert_close(d.mean, ref.mean)
    assert d.sample((2,)).shape == (2, 4, *SHAPE)
    assert d.expand((3, 4)).log_prob(torch.ones(SHAPE)).shape == (3, 4)
    with pytest.raises(ValueError, match="support"):              # grey levels, validation on
        d.log_prob(torch.full((4, *SHAPE), 0.5))
    with pytest.raises(ValueError, match="Expected parameter logits"):   # what training catches
        LIKELIHOODS["bernoulli"](_cfg("bernoulli"))(torch.full((1, *SHAPE), float("nan")))


def test_fixed_sigma_gaussian_is_the_closed_form_of_seed_003():
    """log p = -d/2 log(2 pi sigma^2) - |x - f(z)|^2 / (2 sigma^2)."""
    sigma = 0.3
    lik = LIKELIHOODS["gaussian"](_cfg("gaussian", likelihood_sigma=sigma))
    mean, x = torch.randn(4, *SHAPE), torch.rand(4, *SHAPE)
    by_hand = (-D / 2 * math.log(2 * math.pi * sigma ** 2)
               - ((x - mean) ** 2).flatten(1).sum(1) / (2 * sigma ** 2))
    assert torch.allclose(lik(mean).log_prob(x), by_hand, rtol=1e-5)
    assert lik(mean).mean.shape == (4, *SHAPE)


def test_learned_variance_gaussian_is_the_closed_form_with_diagonal_sigma_theta():
    floor = 0.01
    lik = LIKELIHOODS["gaussian_learned"](_cfg("gaussian_learned", likelihood_min_variance=floor))
    out = torch.randn(4, 2 * SHAPE[0], *SHAPE[1:])                 # mean map, variance map
    x = torch.rand(4, *SHAPE)
    mean, raw = out[:, :1], out[:, 1:]
    var = floor + F.softplus(raw)
    assert torch.allclose(lik(out).log_prob(x), _gaussian_log_prob(x, mean, var), rtol=1e-5)
    assert torch.allclose(lik(out).variance, var)


def test_learned_variance_decoder_emits_two_maps():
    torch.manual_seed(0)
    model = build_model(_cfg("gaussian_learned"), SHAPE)
    z = torch.randn(3, 2)
    assert model.decoder(z).shape == (3, 2, *SHAPE[1:])
    assert model.decode(z).event_shape == SHAPE


@pytest.mark.parametrize("floor", [1e-3, 0.05])
def test_variance_floor_holds_even_when_training_drives_it_down(floor):
    """x equal to the mean rewards a vanishing variance; the floor stops it."""
    lik = LIKELIHOODS["gaussian_learned"](_cfg("gaussian_learned", likelihood_min_variance=floor))
    assert torch.all(lik.variance_of(torch.tensor([-1e4, -50.0])) >= floor)
    raw = torch.zeros(1, 1, *SHAPE[1:], requires_grad=True)
    mean = torch.rand(1, 1, *SHAPE[1:])
    opt = torch.optim.Adam([raw], lr=0.5)
    for _ in range(300):
        loss = -lik(torch.cat([mean, raw], 1)).log_prob(mean).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p = lik(torch.cat([mean, raw], 1))
    assert float(p.variance.min()) >= floor
    assert float(p.variance.max()) < 1.1 * floor      # it was driven all the way to the floor
    bound = -0.5 * D * math.log(2 * math.pi * floor)  # so the density stays bounded
    assert float(p.log_prob(mean)) <= bound + 1e-3


def test_isotropic_gaussian_learns_one_variance_above_the_floor():
    cfg = _cfg("gaussian_isotropic", likelihood_sigma=0.3, likelihood_min_variance=0.02)
    lik = LIKELIHOODS["gaussian_isotropic"](cfg)
    assert float(lik.variance.detach()) == pytest.approx(0.09, rel=1e-5)   # starts at sigma^2
    mean, x = torch.randn(2, *SHAPE), torch.rand(2, *SHAPE)
    var = lik.variance.expand_as(mean)
    assert torch.allclose(lik(mean).log_prob(x), _gaussian_log_prob(x, mean, var), rtol=1e-5)
    opt = torch.optim.Adam(lik.parameters(), lr=0.5)
    for _ in range(200):                                              # a perfect fit: var -> floor
        loss = -lik(mean).log_prob(mean).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert 0.02 <= float(lik.variance.detach()) < 0.022


def test_learned_noise_level_is_a_model_parameter_saved_in_the_state_dict():
    model = build_model(_cfg("gaussian_isotropic", likelihood_sigma=0.5), SHAPE)
    assert "likelihood.rho" in model.state_dict()
    assert any(p is model.likelihood.rho for ps in model.optim_groups().values() for p in ps)
    fixed = build_model(_cfg("gaussian", likelihood_sigma=0.5), SHAPE)
    assert float(fixed.state_dict()["likelihood.sigma"]) == 0.5
    assert not any(n.startswith("likelihood") for n, _ in fixed.named_parameters())


@pytest.mark.parametrize("bad, match", [
    ({"likelihood": "poisson"}, r"models\.m\.likelihood"),
    ({"likelihood": "gaussian", "likelihood_sigma": 0}, r"models\.m\.likelihood_sigma"),
    ({"likelihood": "gaussian_learned", "likelihood_min_variance": -1e-3},
     r"models\.m\.likelihood_min_variance"),
    ({"likelihood": "gaussian_isotropic", "likelihood_sigma": 0.01, "likelihood_min_variance": 0.01},
     r"likelihood_sigma\^2 = 0\.0001 .* must exceed likelihood_min_variance = 0\.01"),
])
def test_bad_likelihood_options_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(**bad)
