"""Gradient estimators for phi (models/estimators.py) on an analytic case, and their
use by the VAE family.

Analytic case: q = N(mu, sigma^2) with parameters (mu, log sigma), f(z) = (z - a)^2,
so E_q[f] = (mu - a)^2 + sigma^2, d/dmu = 2 (mu - a), d/dsigma = 2 sigma and
d/da = -2 (mu - a). Each estimator is drawn R times independently in one pass
(R copies of the parameters), and means are compared with the closed form
within Monte Carlo error.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from vaebench.config import ConfigError
from vaebench.models.estimators import ESTIMATORS, gradient_variance

MU, SIGMA, A = 0.7, 1.3, -0.4
R = 20_000      # independent gradient draws
S = 4           # samples per draw


def draws(estimator: str, baseline: str = "none", n_samples: int = S, seed: int = 0):
    """R independent draws of (d/dmu, d/dsigma, d/da, value) of the estimator's surrogate."""
    torch.manual_seed(seed)
    mu = torch.full((R, 1), MU, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.full((R, 1), math.log(SIGMA), dtype=torch.float64, requires_grad=True)
    a = torch.full((R, 1), A, dtype=torch.float64, requires_grad=True)   # a "theta"
    q = Independent(Normal(mu, log_sigma.exp()), 1)                        # batch (R,)

    def f(z):                                                              # (S, R, 1) -> (S, R)
        return ((z - a) ** 2).sum(-1)

    value = ESTIMATORS[estimator](q, f, n_samples, baseline)               # (R,)
    g_mu, g_ls, g_a = torch.autograd.grad(value.sum(), [mu, log_sigma, a])
    return g_mu[:, 0], g_ls[:, 0] / SIGMA, g_a[:, 0], value.detach()       # d/dsigma = d/dlog sigma / sigma


EXACT = {"mu": 2 * (MU - A), "sigma": 2 * SIGMA, "a": -2 * (MU - A)}


def assert_mean_close(samples: torch.Tensor, exact: float, what: str):
    se = samples.std() / math.sqrt(len(samples))
    assert abs(float(samples.mean()) - exact) < 4 * float(se) + 1e-9, \
        f"{what}: mean {float(samples.mean()):.4f} vs exact {exact:.4f} (se {float(se):.4f})"


@pytest.mark.parametrize("estimator,baseline", [("reparam", "none"), ("score_function", "none"),
                                                ("score_function", "leave_one_out")])
def test_estimators_are_unbiased_for_the_closed_form(estimator, baseline):
    g_mu, g_sigma, g_a, value = draws(estimator, baseline)
    assert_mean_close(g_mu, EXACT["mu"], f"{estimator}/{baseline} d/dmu")
    assert_mean_close(g_sigma, EXACT["sigma"], f"{estimator}/{baseline} d/dsigma")
    # theta keeps its pathwise gradient E_q[d f / d a] under every estimator
    assert_mean_close(g_a, EXACT["a"], f"{estimator}/{baseline} d/da")
    # the surrogate's value is the Monte Carlo estimate of E_q[f]
    assert_mean_close(value, (MU - A) ** 2 + SIGMA ** 2, f"{estimator} value")


def test_reparam_variance_matches_its_closed_form():
    # d/dmu = (1/S) sum_s 2 (mu + sigma eps_s - a): variance 4 sigma^2 / S
    g_mu, *_ = draws("reparam")
    assert float(g_mu.var()) == pytest.approx(4 * SIGMA ** 2 / S, rel=0.05)


def test_score_function_has_larger_variance_and_the_baseline_reduces_it():
    rp = [g.var() for g in draws("reparam")[:2]]
    sf = [g.var() for g in draws("score_function", "none")[:2]]
    loo = [g.var() for g in draws("score_function", "leave_one_out")[:2]]
    for name, r, s, b in zip(("mu", "sigma"), rp, sf, loo):
        assert s > 2 * r, f"d/d{name}: score-function variance {s:.3f} not above reparam {r:.3f}"
        assert b < 0.8 * s, f"d/d{name}: baseline variance {b:.3f} not below {s:.3f}"


def test_leave_one_out_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        draws("score_function", "leave_one_out", n_samples=1)


def test_gradient_variance_matches_the_closed_form():
    torch.manual_seed(1)
    mu = torch.tensor([MU], dtype=torch.float64, requires_grad=True)

    def loss():
        q = Independent(Normal(mu, torch.tensor([SIGMA], dtype=torch.float64)), 1)
        return ESTIMATORS["reparam"](q, lambda z: ((z - A) ** 2).sum(-1), S).sum()

    assert gradient_variance(loss, [mu], 4000) == pytest.approx(4 * SIGMA ** 2 / S, rel=0.1)
    with pytest.raises(ValueError, match="repeats"):
        gradient_variance(loss, [mu], 1)


# --- the VAE family ---------------------------------------------------------------------

@pytest.fixture
def vae(tiny):
    return lambda **options: tiny.model("vae", **options)


def binary_batch(n=16, seed=0, shape=(1, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, *shape), 0.4), generator=g)


def test_default_vae_loss_is_the_one_sample_reparameterised_elbo(vae):
    model, x = vae(), binary_batch()
    torch.manual_seed(3)
    out = model.loss(x, 0)
    torch.manual_seed(3)
    q = model.encode(x)
    z = q.rsample()                                        # (B, D): the original estimator
    recon = -model.decode(z).log_prob(x)
    kl = torch.distributions.kl_divergence(q, model.prior())
    assert torch.equal(out.loss, (recon + kl).mean())


def test_score_function_vae_keeps_the_pathwise_decoder_gradient(vae):
    model, x = vae(gradient="score_function", mc_samples=3, baseline="leave_one_out"), binary_batch()
    torch.manual_seed(5)
    out = model.loss(x, 0)
    dec = list(model.decoder.parameters())
    g_sf = torch.autograd.grad(out.loss, dec + list(model.encoder.parameters()))
    torch.manual_seed(5)
    q = model.encode(x)
    z = q.sample((3,))                                     # the same z as the estimator drew
    ref = (-model.decode(z).log_prob(x).mean(0)).mean()
    g_ref = torch.autograd.grad(ref, dec)
    for a, b in zip(g_sf[:len(dec)], g_ref):
        torch.testing.assert_close(a, b)
    assert all(g.abs().sum() > 0 for g in g_sf[len(dec):]), "encoder gets no gradient"
    kl = torch.distributions.kl_divergence(q, model.prior()).mean()
    torch.testing.assert_close(out.loss, ref + kl)         # value: the Monte Carlo -ELBO


def test_diagnostics_report_both_estimators_variances(vae):
    model, x = vae(mc_samples=4, grad_var_repeats=16), binary_batch(32)
    d = model.diagnostics(x)
    assert d["grad_var_score_function"] > d["grad_var_reparam"] > 0
    assert d["grad_var_score_function_loo"] < d["grad_var_score_function"]
    assert d["grad_var_ratio_score_function_to_reparam"] == pytest.approx(
        d["grad_var_score_function"] / d["grad_var_reparam"])
    assert (d["grad_var_mc_samples"], d["grad_var_batch"]) == (4.0, 32.0)
    assert vae(grad_var_repeats=0).diagnostics(x) == {}
    assert "grad_var_score_function_loo" not in vae(grad_var_repeats=4).diagnostics(x)


@pytest.mark.parametrize("options,message", [
    ({"gradient": "pathwise"}, "gradient"),
    ({"baseline": "mean"}, "baseline"),
    ({"gradient": "score_function", "baseline": "leave_one_out"}, "mc_samples >= 2"),
    ({"baseline": "leave_one_out", "mc_samples": 4}, "score_function only"),
    ({"mc_samples": 0}, "mc_samples"),
    ({"optimisation": "sequential"}, "optimisation"),
    ({"grad_var_repeats": 1}, "grad_var_repeats"),
])
def test_bad_options_are_config_errors(vae, options, message):
    with pytest.raises(ConfigError, match=message):
        vae(**options)
