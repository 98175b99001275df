"""The one ELBO helper: the closed-form KL against the formula by hand, the Monte Carlo
KL against a mixture density by hand, and the ELBO as log-likelihood minus KL."""
from __future__ import annotations

import math

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vaebench.models.elbo import closed_form_kl, elbo_terms, kl_to_prior, log_ratio

B, D, S = 4, 3, 6


def _q():
    g = torch.Generator().manual_seed(0)
    loc, scale = torch.randn(B, D, generator=g), torch.rand(B, D, generator=g) + 0.3
    return Independent(Normal(loc, scale), 1), loc, scale


def _standard():
    return Independent(Normal(torch.zeros(D), torch.ones(D)), 1)


def _mixture():
    """Two-component Gaussian mixture over R^D (no closed-form KL in torch.distributions)."""
    locs = torch.tensor([[-1.0] * D, [2.0] * D])
    scales = torch.tensor([[0.5] * D, [1.5] * D])
    return MixtureSameFamily(Categorical(torch.tensor([0.3, 0.7])),
                             Independent(Normal(locs, scales), 1)), locs, scales


def _log_normal(z, loc, scale):                   # sum over the last dim
    return (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def test_gaussian_kl_to_the_standard_normal_is_the_closed_form_by_hand():
    q, loc, scale = _q()
    by_hand = 0.5 * (scale ** 2 + loc ** 2 - 1 - (scale ** 2).log()).sum(-1)
    z = q.sample((S,))
    kl, closed = kl_to_prior(q, _standard(), z)
    assert closed
    assert kl.shape == (B,)
    assert torch.allclose(kl, by_hand, atol=1e-6)
    assert torch.allclose(closed_form_kl(q, _standard()), by_hand, atol=1e-6)


def test_mixture_prior_falls_back_to_the_monte_carlo_mean_over_the_given_samples():
    q, loc, scale = _q()
    prior, locs, scales = _mixture()
    assert closed_form_kl(q, prior) is None
    z = q.sample(torch.Size([S]))                                      # (S, B, D)
    log_p = torch.logsumexp(torch.stack([math.log(0.3) + _log_normal(z, locs[0], scales[0]),
                                         math.log(0.7) + _log_normal(z, locs[1], scales[1])]), 0)
    by_hand = (_log_normal(z, loc, scale) - log_p).mean(0)
    kl, closed = kl_to_prior(q, prior, z)
    assert not closed
    assert torch.allclose(kl, by_hand, atol=1e-5)
    assert torch.allclose(log_ratio(q, prior, z).mean(0), by_hand, atol=1e-5)


def test_monte_carlo_kl_approaches_the_closed_form_with_many_samples():
    q, _, _ = _q()
    z = q.sample(torch.Size([20000]))
    closed = closed_form_kl(q, _standard())
    assert torch.allclose(log_ratio(q, _standard(), z).mean(0), closed, atol=0.05)


def test_elbo_terms_average_the_log_likelihood_and_subtract_the_kl():
    q, loc, scale = _q()
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(1))
    z = q.sample(torch.Size([S]))
    calls = []

    def log_lik(z):                                # p(x|z) = N(z, I)
        calls.append(z.shape)
        return _log_normal(x, z, torch.ones(D))

    terms = elbo_terms(log_lik, q, _standard(), z)
    assert calls == [z.shape]                      # the given samples, decoded once
    assert torch.allclose(terms.log_lik, _log_normal(x, z, torch.ones(D)).mean(0))
    assert terms.closed_form
    assert torch.allclose(terms.elbo, terms.log_lik - closed_form_kl(q, _standard()))
    mixture = elbo_terms(log_lik, q, _mixture()[0], z)
    assert not mixture.closed_form
    assert torch.equal(mixture.elbo, mixture.log_lik - log_ratio(q, _mixture()[0], z).mean(0))
