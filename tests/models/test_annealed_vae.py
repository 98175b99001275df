"""AnnealedVAE (Burgess et al. 2018): the capacity schedule C(step) and gamma |KL - C|."""
from __future__ import annotations

import pytest
import torch

from vaebench.models import build_model, validate_model_config

SHAPE = (1, 28, 28)


def _model(**extra):
    block = {"family": "annealed_vae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 4,
             **extra}
    return build_model(validate_model_config("m", block), SHAPE)


def test_capacity_rises_linearly_to_c_max_then_holds():
    model = _model(c_max=25.0, c_steps=1000)
    assert [model.capacity(s) for s in (0, 500, 1000, 1001, 10**6)] == [0.0, 12.5, 25.0, 25.0, 25.0]
    assert model.capacity(250) == pytest.approx(6.25)


@pytest.mark.parametrize("step", [0, 400])   # C = 0 < KL, then C = 40 > KL: both sides of |.|
def test_loss_is_gamma_times_the_kl_gap_plus_reconstruction_by_hand(step):
    torch.manual_seed(0)
    model = _model(gamma=7.0, c_max=100.0, c_steps=1000)
    x = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(3)).round()
    torch.manual_seed(1)
    out = model.loss(x, step)
    torch.manual_seed(1)
    q = model.encode(x)
    recon = -model.decode(q.rsample((1,))).log_prob(x).mean()
    mu, var = q.mean, q.variance
    kl = 0.5 * (var + mu ** 2 - 1 - var.log()).sum(-1).mean()     # closed form, batch mean
    c = 100.0 * step / 1000
    assert out.terms["capacity"].item() == c
    assert out.loss.item() == pytest.approx((recon + 7.0 * (kl - c).abs()).item(), rel=1e-5)
    assert out.terms["elbo"].item() == pytest.approx(-(recon + kl).item(), rel=1e-5)
    model.kl_anneal = 0.25       # a KL warm-up tempers the capacity term
    torch.manual_seed(1)
    warm = model.loss(x, step)
    assert warm.loss.item() == pytest.approx((recon + 0.25 * 7.0 * (kl - c).abs()).item(), rel=1e-5)
