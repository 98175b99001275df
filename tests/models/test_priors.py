"""Learned priors: densities against hand computations, gradients reach lambda, and the
KL term (closed form where one exists, Monte Carlo otherwise)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config
from vaebench.models.priors import PRIORS
from vaebench.models.vae import VAEConfig

SHAPE = (1, 28, 28)
LEARNED = ["gaussian", "mog", "vamp"]


def _model(family="vae", **extra):
    block = {"family": family, "dataset": "mnist", "backbone": "mlp", "latent_dim": 3,
             "hidden": [16], **extra}
    return build_model(validate_model_config("m", block), SHAPE)


def _x(n=5):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(5)).round()


def _log_normal(z, loc, scale):
    """Diagonal Gaussian log density by hand, summed over the last axis."""
    return (-0.5 * math.log(2 * math.pi) - scale.log() - 0.5 * ((z - loc) / scale) ** 2).sum(-1)


def test_prior_option_lists_the_registry():
    assert set(VAEConfig.model_fields["prior"].annotation.__args__) == set(PRIORS)


@pytest.mark.parametrize("family", ["vae", "beta_vae", "iwae"])
@pytest.mark.parametrize("prior", LEARNED)
def test_learned_prior_parameters_receive_gradients(family, prior):
    torch.manual_seed(0)
    model = _model(family, prior=prior, prior_components=4)
    model.loss(_x(), 0).loss.backward()
    params = dict(model.prior_net.named_parameters())
    assert params, "a learned prior has parameters"
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # and they are trained: they sit in the optimiser's groups
    grouped = {id(p) for ps in model.optim_groups().values() for p in ps}
    assert {id(p) for p in params.values()} <= grouped


def test_standard_prior_has_no_parameters():
    assert not list(_model(prior="standard").prior_net.parameters())


def test_gaussian_prior_is_the_diagonal_gaussian_r_lambda():
    model = _model(prior="gaussian")
    with torch.no_grad():
        model.prior_net.loc.copy_(torch.tensor([0.5, -1.0, 2.0]))
        model.prior_net.log_scale.copy_(torch.tensor([0.0, 0.3, -0.7]))
    z = torch.randn(10, 3)
    expected = _log_normal(z, model.prior_net.loc, model.prior_net.log_scale.exp())
    assert torch.allclose(model.prior().log_prob(z), expected, atol=1e-5)


def test_mog_density_is_the_weighted_sum_of_its_components():
    torch.manual_seed(0)
    model = _model(prior="mog", prior_components=4)
    net = model.prior_net
    with torch.no_grad():
        net.logits.copy_(torch.tensor([0.0, 1.0, -2.0, 0.5]))
        net.log_scale.copy_(0.3 * torch.randn(4, 3))
    z = torch.randn(7, 3)
    log_pi = net.logits.log_softmax(0)                                    # (C,)
    per = _log_normal(z[:, None, :], net.loc, net.log_scale.exp())         # (N, C)
    expected = torch.logsumexp(log_pi + per, dim=1)
    assert torch.allclose(model.prior().log_prob(z), expected, atol=1e-5)
    assert not torch.allclose(net.loc[0], net.loc[1])   # symmetry broken at initialisation


def test_vamp_density_is_the_mean_of_the_encoder_posteriors_at_the_pseudo_inputs():
    torch.manual_seed(0)
    model = _model(prior="vamp", prior_components=6)
    u = model.prior_net.pseudo_inputs.detach()                             # (M, C, H, W)
    assert u.shape == (6, *SHAPE) and 0 <= float(u.min()) and float(u.max()) <= 1
    z = torch.randn(9, 3)
    per = torch.stack([model.encode(u[m:m + 1]).log_prob(z) for m in range(6)], 1)  # (N, M)
    expected = torch.logsumexp(per, dim=1) - math.log(6)
    assert torch.allclose(model.prior().log_prob(z), expected, atol=1e-5)


@pytest.mark.parametrize("prior", ["standard", "gaussian"])
def test_closed_form_kl_equals_the_monte_carlo_kl(prior):
    torch.manual_seed(0)
    model = _model(prior=prior)
    if prior == "gaussian":
        with torch.no_grad():
            model.prior_net.loc.copy_(torch.tensor([0.4, -0.8, 1.5]))
            model.prior_net.log_scale.copy_(torch.tensor([-0.5, 0.4, 0.1]))
    with torch.no_grad():
        q = model.encode(_x(3))
        closed = model.kl(q)                                               # (B,) closed form
        assert torch.allclose(closed, kl_divergence(q, model.prior()))
        n = 20000
        z = q.sample((n,))                                                 # (n, B, D)
        mc = q.log_prob(z) - model.prior().log_prob(z)                     # (n, B)
    se = mc.std(0) / math.sqrt(n)
    assert torch.all((mc.mean(0) - closed).abs() < 4 * se), (mc.mean(0), closed, se)
    assert torch.all(closed > 10 * se)       # the comparison is not trivially near zero


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_mixture_priors_take_the_monte_carlo_kl_at_the_same_samples(prior):
    torch.manual_seed(0)
    model = _model(prior=prior, prior_components=3)
    q = model.encode(_x())
    z = q.rsample((4,))                                                    # (S, B, D)
    expected = (q.log_prob(z) - model.prior().log_prob(z)).mean(0)         # (B,)
    assert torch.allclose(model.kl(q, z), expected)
    # and the loss uses it: recon + KL at the very same z
    torch.manual_seed(1)
    out = model.loss(_x(), 0)
    torch.manual_seed(1)
    q = model.encode(_x())
    z = q.rsample((1,))
    recon = -model.decode(z).log_prob(_x())
    by_hand = recon + q.log_prob(z) - model.prior().log_prob(z)
    assert torch.allclose(out.loss, by_hand.mean(), rtol=1e-5)
    assert torch.allclose(out.terms["recon"], recon.mean(), rtol=1e-5)


@pytest.mark.parametrize("prior", LEARNED)
def test_samples_from_learned_priors(prior):
    model = _model(prior=prior, prior_components=3)
    assert model.prior().sample((4,)).shape == (4, 3)
    assert model.sample(4).shape == (4, *SHAPE)


@pytest.mark.parametrize("bad, match", [
    ({"prior": "flow"}, r"models\.m\.prior"),
    ({"prior": "mog", "prior_components": 0}, r"models\.m\.prior_components"),
])
def test_bad_prior_options_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        validate_model_config("m", {"family": "vae", "dataset": "mnist", "backbone": "mlp",
                                    "latent_dim": 3, **bad})


@pytest.mark.parametrize("options", [{"gradient": "reparam"},
                                     {"gradient": "score_function", "mc_samples": 3,
                                      "baseline": "leave_one_out"}])
def test_mixture_priors_work_with_every_gradient_estimator(options):
    """The Monte Carlo KL joins the estimator's integrand: the score-function estimator
    differentiates it too, and the prior still gets its pathwise gradient."""
    torch.manual_seed(0)
    model = _model(prior="mog", prior_components=3, **options)
    out = model.loss(_x(), 0)
    out.loss.backward()
    assert torch.allclose(out.loss, -out.terms["elbo"], rtol=1e-5)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.prior_net.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_gradient_variance_diagnostic_handles_priors_without_closed_form_kl():
    torch.manual_seed(0)
    model = _model(prior="vamp", prior_components=3, grad_var_repeats=2)
    out = model.diagnostics(_x())
    assert out["grad_var_reparam"] > 0 and out["grad_var_score_function"] > 0


def test_svi_vae_takes_learned_priors_but_not_the_vampprior():
    torch.manual_seed(0)
    model = _model("svi_vae", prior="mog", prior_components=3)
    lam = torch.zeros(5, 6, requires_grad=True)                          # (B, 2D) at N(0, I)
    elbo = model.local_elbo(_x(), lam)
    assert elbo.shape == (5,) and torch.isfinite(elbo).all()
    elbo.sum().backward()
    assert lam.grad.abs().sum() > 0 and model.prior_net.logits.grad is not None
    with pytest.raises(ConfigError, match=r"models\.m\.prior"):
        validate_model_config("m", {"family": "svi_vae", "dataset": "mnist", "backbone": "mlp",
                                    "latent_dim": 3, "prior": "vamp"})
