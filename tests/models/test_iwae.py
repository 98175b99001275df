"""IWAE: the K-sample bound of Burda et al. 2016 -- its K = 1 case, its monotonicity in K."""
from __future__ import annotations

import math

import pytest
import torch

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config

SHAPE = (1, 28, 28)


def _model(family: str, **extra):
    block = {"family": family, "dataset": "mnist", "backbone": "mlp", "latent_dim": 4, **extra}
    return build_model(validate_model_config("m", block), SHAPE)


def _pair(prior: str):
    """An IWAE with k = 1 and a VAE with the same weights."""
    torch.manual_seed(0)
    iwae = _model("iwae", iw_samples=1, prior=prior)
    vae = _model("vae", prior=prior)
    vae.load_state_dict(iwae.state_dict())
    return iwae, vae


def _x(n=6):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(3)).round()


def test_vlb1_is_the_elbo_on_the_same_samples():
    """VLB^(1) = log p(x|z) + log p(z) - log q(z|x) at the VAE's own sample z."""
    iwae, vae = _pair("standard")
    x = _x()
    torch.manual_seed(7)
    out = iwae.loss(x, 0)
    torch.manual_seed(7)
    q = vae.encode(x)
    z = q.rsample()                                                    # the same draw
    elbo = vae.decode(z).log_prob(x) + vae.prior().log_prob(z) - q.log_prob(z)
    assert torch.allclose(out.loss, -elbo.mean(), rtol=1e-6)
    torch.manual_seed(7)
    vae_out = vae.loss(x, 0)
    assert torch.equal(out.terms["recon"], vae_out.terms["recon"])   # same sample, same term
    # the VAE takes the KL in closed form: the two losses differ by KL - (log q - log p)
    mc_kl = (q.log_prob(z) - vae.prior().log_prob(z)).mean()
    assert torch.allclose(vae_out.loss - out.loss, vae_out.terms["kl"] - mc_kl, atol=1e-4)


def test_vlb1_equals_the_vae_loss_exactly_when_the_kl_is_monte_carlo():
    """With a mixture prior both families estimate the KL from the sample: identical losses."""
    iwae, vae = _pair("mog")
    x = _x()
    torch.manual_seed(11)
    a = iwae.loss(x, 0)
    torch.manual_seed(11)
    b = vae.loss(x, 0)
    assert torch.allclose(a.loss, b.loss, rtol=1e-6)
    assert torch.allclose(a.terms["elbo"], b.terms["elbo"], rtol=1e-6)


def test_vlb1_and_the_closed_form_elbo_agree_in_expectation():
    iwae, vae = _pair("standard")
    x = _x(4)
    with torch.no_grad():
        vae_loss = torch.stack([vae.loss(x, 0).loss for _ in range(400)])
        iwae_loss = torch.stack([iwae.loss(x, 0).loss for _ in range(400)])
    se = math.sqrt(vae_loss.var() / 400 + iwae_loss.var() / 400)
    assert abs(float(vae_loss.mean() - iwae_loss.mean())) < 4 * se


def test_vlb_is_non_decreasing_in_k():
    """E[VLB^(K)] grows with K (Burda et al. 2016, Thm 1): compared with Monte Carlo errors."""
    torch.manual_seed(0)
    model = _model("iwae", iw_samples=1, hidden=[20])     # small: 25,000 decoder passes per image
    x = _x(4)
    reps, ks = 200, (1, 2, 5, 20, 100)
    means, ses = [], []
    with torch.no_grad():
        for k in ks:
            log_w = sum(model.log_weights(x, reps * k))               # (reps*K, B)
            vlb = model.bound(log_w.view(reps, k, -1).transpose(0, 1)).mean(-1)   # (reps,)
            means.append(float(vlb.mean()))
            ses.append(float(vlb.std() / math.sqrt(reps)))
    for i in range(len(ks) - 1):
        tolerance = 3 * math.hypot(ses[i], ses[i + 1])
        assert means[i + 1] >= means[i] - tolerance, (ks[i], ks[i + 1], means, ses)
    # and the bound does tighten: K = 100 is well above the ELBO
    assert means[-1] - means[0] > 10 * math.hypot(ses[0], ses[-1]), (means, ses)


def test_bound_is_a_stable_log_mean_exp():
    model = _model("iwae", iw_samples=2)
    a = -1e4
    log_w = torch.tensor([[a], [a + math.log(3.0)]])                  # (K=2, B=1)
    assert torch.allclose(model.bound(log_w), torch.tensor([a + math.log(2.0)]), rtol=0,
                          atol=1e-3)


def test_logged_terms_and_jensen():
    torch.manual_seed(0)
    model = _model("iwae", iw_samples=5)
    out = model.loss(_x(), 0)
    t = out.terms
    assert torch.allclose(out.loss, -t["vlb"])
    assert torch.allclose(t["elbo"], -(t["recon"] + t["kl"]), atol=1e-4)
    assert t["vlb"] >= t["elbo"]       # log mean exp >= mean log, sample by sample


@pytest.mark.parametrize("k", [0, -3, 2.5])
def test_iw_samples_must_be_a_positive_integer(k):
    with pytest.raises(ConfigError, match=r"models\.m\.iw_samples"):
        validate_model_config("m", {"family": "iwae", "dataset": "mnist", "backbone": "mlp",
                                    "latent_dim": 4, "iw_samples": k})


@pytest.mark.parametrize("bad", [{"gradient": "score_function"}, {"mc_samples": 2}])
def test_iwae_rejects_estimator_options_its_bound_does_not_use(bad):
    with pytest.raises(ConfigError, match=rf"models\.m\.{next(iter(bad))}"):
        validate_model_config("m", {"family": "iwae", "dataset": "mnist", "backbone": "mlp",
                                    "latent_dim": 4, **bad})
