"""InfoVAE (Zhao et al. 2019): recon + (1 - alpha) KL + (alpha + lam - 1) MMD^2."""
from __future__ import annotations

import pytest
import torch

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config
from vaebench.models.mmd import mmd2

SHAPE = (1, 28, 28)
BASE = {"dataset": "mnist", "backbone": "mlp", "latent_dim": 4}


def _model(family="info_vae", **extra):
    return build_model(validate_model_config("m", {"family": family, **BASE, **extra}), SHAPE)


def _x(n=6):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(3)).round()


def test_alpha_zero_lam_one_is_the_elbo_loss_on_the_same_samples():
    torch.manual_seed(0)
    info = _model(kl_reduction=0.0, mmd_weight=1.0)
    vae = _model("vae")
    vae.load_state_dict(info.state_dict())
    torch.manual_seed(5)
    mine = info.loss(_x(), 0)
    torch.manual_seed(5)
    elbo = vae.loss(_x(), 0)
    assert mine.loss.item() == pytest.approx(elbo.loss.item(), rel=1e-6)
    assert mine.terms["elbo"].item() == pytest.approx(elbo.terms["elbo"].item(), rel=1e-6)


@pytest.mark.parametrize("alpha, lam", [(0.5, 3.0), (1.0, 10.0), (-1.0, 4.0)])
def test_loss_weights_kl_and_mmd_as_the_paper(alpha, lam):
    """The MMD is taken on one reparameterised draw of q per example, after the ELBO's
    draws, against the next B x D standard normals."""
    torch.manual_seed(0)
    model, x = _model(kl_reduction=alpha, mmd_weight=lam, kernel="rbf"), _x()
    torch.manual_seed(5)
    out = model.loss(x, 0)
    q = model.encode(x)
    torch.manual_seed(5)
    q.rsample()                                   # the ELBO's reconstruction draw
    z = q.rsample()
    by_hand = mmd2(z, torch.randn(6, 4), "rbf", 2 * 4 * 1.0)
    assert out.terms["mmd"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    expected = (out.terms["recon"] + (1 - alpha) * out.terms["kl"] + (alpha + lam - 1) * by_hand)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.terms["elbo"].item() == pytest.approx(
        -(out.terms["recon"] + out.terms["kl"]).item(), rel=1e-6)


def test_a_kl_warm_up_tempers_the_kl_only():
    torch.manual_seed(0)
    model, x = _model(kl_reduction=0.5, mmd_weight=3.0), _x()
    torch.manual_seed(5)
    full = model.loss(x, 0)
    model.kl_anneal = 0.2
    torch.manual_seed(5)
    warm = model.loss(x, 0)
    assert warm.loss.item() == pytest.approx(
        (full.loss - 0.8 * 0.5 * full.terms["kl"]).item(), rel=1e-5)


def test_weights_that_reward_a_divergence_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"models\.m.*kl_reduction <= 1"):
        _model(kl_reduction=1.5, mmd_weight=10.0)
    with pytest.raises(ConfigError, match=r"models\.m.*mmd_weight >= 1"):
        _model(kl_reduction=0.0, mmd_weight=0.5)
    with pytest.raises(ConfigError, match=r"models\.m\.prior"):
        _model(prior="vamp")
