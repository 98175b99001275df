"""The log-likelihood estimators against a model whose log p(x) is known in closed form."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from vaebench.evaluate.loglik.estimate import importance_estimates
from vaebench.evaluate.loglik.gaps import fit_local_posterior, reparameterised_elbo
from vaebench.evaluate.loglik.posterior import active_units, kl_per_dimension, posterior_means

KS = [1, 10, 100, 1000]
N = 400


def paired(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean of a - b over points and its standard error."""
    d = (a - b).detach().double()
    return float(d.mean()), float(d.std() / math.sqrt(len(d)))


@pytest.fixture(scope="module")
def fitted(linear_gaussian):
    model = linear_gaussian().eval()
    x = model.sample_data(N)
    with torch.no_grad():
        exact = model.exact_log_prob(x).double()
        est = importance_estimates(model, x, KS, chunk_points=200, chunk_samples=250, seed=3,
                                   progress=False)
        elbo = est.recon - kl_divergence(model.encode(x), model.prior()).double()
    return model, x, exact, est, elbo


def test_largest_k_within_three_standard_errors_of_exact(fitted):
    _, _, exact, est, _ = fitted
    err, se = paired(est.log_p[KS[-1]], exact)
    assert abs(err) < 3 * se, (err, se)
    assert abs(err) < 0.01       # nats per image, for a model with log p(x) ~ -10.7


def test_error_shrinks_with_k_until_it_reaches_the_noise(fitted):
    _, _, exact, est, _ = fitted
    errs = [paired(est.log_p[k], exact) for k in KS]
    assert errs[0][0] < -3 * errs[0][1]          # K = 1 is clearly biased low (the ELBO)
    for (e, se), (e_next, _) in zip(errs, errs[1:]):
        if abs(e) > 3 * se:                     # while the bias dominates the noise ...
            assert abs(e_next) < abs(e)         # ... every larger K is closer to log p(x)
    assert abs(errs[-1][0]) < abs(errs[0][0]) / 50


def test_prior_sampling_is_worse_at_equal_k(fitted):
    _, _, exact, est, _ = fitted
    for k in KS:
        naive_err, _ = paired(est.naive[k], exact)
        is_err, _ = paired(est.log_p[k], exact)
        assert abs(naive_err) > 5 * abs(is_err) + 1.0, (k, naive_err, is_err)


def test_elbo_below_every_bound_and_bounds_nondecreasing(fitted):
    _, _, exact, est, elbo = fitted
    assert float(elbo.mean()) < float(exact.mean())
    for k in KS[1:]:
        gain, se = paired(est.log_p[k], elbo)
        assert gain > 3 * se, (k, gain, se)      # ELBO < L_K, significantly, for K > 1
    for k, k_next in zip(KS, KS[1:]):
        step, se = paired(est.log_p[k_next], est.log_p[k])
        assert step > -3 * se                    # L_K non-decreasing within noise


def test_one_sample_bound_is_the_elbo_in_expectation(fitted):
    _, _, _, est, elbo = fitted
    diff, se = paired(est.log_p[1], elbo)
    assert abs(diff) < 3 * se, (diff, se)
    assert 3 * se < paired(est.log_p[10], elbo)[0] / 3   # precise enough to tell L_1 from L_10


def test_recon_and_mc_kl_match_closed_forms(fitted):
    model, x, _, est, _ = fitted
    q, prior = model.encode(x), model.prior()
    kl = kl_divergence(q, prior).double()
    diff, se = paired(est.log_ratio, kl)          # MC KL from the K_max proposal samples
    assert abs(diff) < 3 * se + 1e-6
    # E_q log N(x; Wz + mu, s^2 I) in closed form for q = N(m, diag(v))
    with torch.no_grad():
        m, v = q.mean, q.variance
        resid = x.flatten(1) - m @ model.W.T - model.mu
        trace = (model.W ** 2 * v[:, None, :]).sum((1, 2))
        d = x[0].numel()
        recon = (-0.5 * d * math.log(2 * math.pi * model.sigma ** 2)
                 - 0.5 * ((resid ** 2).sum(1) + trace) / model.sigma ** 2).double()
    diff, se = paired(est.recon, recon)
    assert abs(diff) < 3 * se + 1e-4


def test_chunk_sizes_do_not_change_the_numbers(linear_gaussian):
    model = linear_gaussian(seed=1).eval()
    x = model.sample_data(37)
    ks = [1, 7, 60]
    runs = [importance_estimates(model, x, ks, chunk_points=p, chunk_samples=s, seed=5,
                                 progress=False)
            for p, s in ((37, 60), (5, 13), (3, 2), (100, 7))]
    for other in runs[1:]:
        for k in ks:
            for a, b in ((other.log_p[k], runs[0].log_p[k]), (other.naive[k], runs[0].naive[k])):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)   # float32 rounding
        torch.testing.assert_close(other.recon, runs[0].recon, rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(other.log_ratio, runs[0].log_ratio, rtol=1e-6, atol=1e-5)


def test_seed_decides_the_draws_and_global_rng_is_untouched(linear_gaussian):
    model = linear_gaussian(seed=2).eval()
    x = model.sample_data(20)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = importance_estimates(model, x, [1, 50], chunk_points=8, chunk_samples=16, seed=0,
                             progress=False)
    assert torch.equal(torch.rand(3), expected_next)
    b = importance_estimates(model, x, [1, 50], chunk_points=20, chunk_samples=50, seed=0,
                             progress=False)
    c = importance_estimates(model, x, [1, 50], chunk_points=8, chunk_samples=16, seed=1,
                             progress=False)
    torch.testing.assert_close(a.log_p[50], b.log_p[50], rtol=0, atol=1e-5)
    assert not torch.allclose(a.log_p[1], c.log_p[1])


def test_gap_optimisation_reaches_the_best_diagonal_gaussian(linear_gaussian):
    """For a Gaussian posterior N(m, M^-1) the best diagonal q (in KL(q || posterior)) has
    mean m and variances 1 / M_uu, and its approximation gap is that KL in closed form."""
    model = linear_gaussian(seed=0).eval()
    x = model.sample_data(40, seed=4)
    q = model.encode(x)
    q_star, history = fit_local_posterior(model, x, q, steps=300, lr=0.01, n_samples=16, seed=0,
                                          progress=False)
    A, cov = model.posterior()
    precision = torch.linalg.inv(cov)
    post_mean = (x.flatten(1) - model.mu.detach()) @ A.T
    torch.testing.assert_close(q_star.mean, post_mean, atol=0.02, rtol=0)
    torch.testing.assert_close(q_star.variance.mean(0), 1 / precision.diagonal(), rtol=0.15,
                               atol=0)

    best_var = (1 / precision.diagonal()).expand_as(post_mean)
    gap_best = kl_divergence(MultivariateNormal(post_mean, torch.diag_embed(best_var)),
                             MultivariateNormal(post_mean, cov))         # (N,), all equal

    with torch.no_grad():
        torch.manual_seed(0)
        elbo_q = reparameterised_elbo(model, x, q, model.prior(), 4000)
        torch.manual_seed(0)          # common random numbers for q and q*
        elbo_star = reparameterised_elbo(model, x, q_star, model.prior(), 4000)
        exact = model.exact_log_prob(x)
    assert bool((elbo_star > elbo_q).all())                     # every point improves
    assert history[-1] > history[0]
    approx_gap = exact - elbo_star                               # (N,)
    torch.testing.assert_close(approx_gap.mean(), gap_best.mean(), atol=0.02, rtol=0)
    amortisation = (elbo_star - elbo_q).mean()
    assert amortisation > 0.1                                    # the encoder is off on purpose


def test_kl_per_dimension_and_active_units(linear_gaussian):
    model = linear_gaussian(seed=0).eval()
    x = model.sample_data(300)
    q, prior = model.encode(x), model.prior()
    per_dim = kl_per_dimension(q, prior, n_samples=10)
    torch.testing.assert_close(per_dim.sum(1), kl_divergence(q, prior))
    n_active, activity = active_units(posterior_means(q, 10), 0.01)
    assert n_active == 3 and bool((activity > 0.1).all())
    model.A[1] = 0.0                                             # unit 1 ignores x
    n_active, activity = active_units(posterior_means(model.encode(x), 10), 0.01)
    assert n_active == 2 and float(activity[1]) == 0.0


def test_kl_per_dimension_needs_a_factorised_prior(linear_gaussian):
    model = linear_gaussian(seed=0).eval()
    x = model.sample_data(5)
    mvn = MultivariateNormal(torch.zeros(3), torch.eye(3))
    assert kl_per_dimension(model.encode(x), mvn, n_samples=4) is None


@pytest.mark.parametrize("kwargs, match", [
    ({"ks": [0, 10]}, "strictly increasing list of positive"),
    ({"ks": []}, "non-empty"),
    ({"ks": [10, 1]}, "strictly increasing"),
    ({"ks": [1, 1]}, "strictly increasing"),
    ({"ks": [1], "chunk_points": 0}, "chunk_points and chunk_samples must be positive"),
    ({"ks": [1], "chunk_samples": -2}, "chunk_points and chunk_samples must be positive"),
])
def test_bad_arguments_are_clear_errors(kwargs, match, linear_gaussian):
    model = linear_gaussian().eval()
    args = {"chunk_points": 4, "chunk_samples": 4, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        importance_estimates(model, model.sample_data(4), **args)


def test_model_without_prior_is_a_clear_error(linear_gaussian):
    class NoPrior(linear_gaussian):
        def prior(self):
            return None
    model = NoPrior().eval()
    with pytest.raises(ValueError, match="NoPrior has no prior"):
        importance_estimates(model, model.sample_data(4), [1], chunk_points=4, chunk_samples=4,
                             progress=False)


def test_bernoulli_vae_estimates_equal_torch_bernoulli_likelihood(monkeypatch):
    """A Bernoulli VAE through the fused log-density gives the numbers that torch's
    Independent(Bernoulli(logits)) gives, for the proposal and the naive estimator."""
    from torch.distributions import Bernoulli, Independent

    from vaebench.models import build_model, validate_model_config
    cfg = validate_model_config("m", {"family": "vae", "dataset": "mnist", "backbone": "mlp",
                                      "latent_dim": 3, "hidden": [16]})
    torch.manual_seed(0)
    model = build_model(cfg, (1, 5, 4)).eval()
    x = torch.rand(11, 1, 5, 4).round()
    args = {"chunk_points": 4, "chunk_samples": 6, "seed": 2, "progress": False}
    fused = importance_estimates(model, x, [1, 5, 20], **args)
    monkeypatch.setattr(type(model.likelihood), "forward",
                        lambda self, out: Independent(Bernoulli(logits=out), 3))
    ref = importance_estimates(model, x, [1, 5, 20], **args)
    for k in (1, 5, 20):
        torch.testing.assert_close(fused.log_p[k], ref.log_p[k], rtol=1e-6, atol=1e-4)
        torch.testing.assert_close(fused.naive[k], ref.naive[k], rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(fused.recon, ref.recon, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(fused.log_ratio, ref.log_ratio)
