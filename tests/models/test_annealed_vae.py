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


def test_capacity_rises_linearly_to_capacity_max_then_holds():
    model = _model(capacity_max=25.0, c_steps=1000)
    assert [model.capacity(s) for s in (0, 500, 1000, 1001, 10**6)] == [0.0, 12.5, 25.0, 25.0, 25.0]
    assert model.capacity(250) == pytest.approx(6.25)


@pytest.mark.parametrize("where", ["below", "among", "above"])
def test_loss_is_gamma_times_the_kl_gap_plus_reconstruction_by_hand(where):
    """C below every example's KL, among them (where |mean KL - C| differs from the
    mean of |KL_i - C|), and above them all."""
    torch.manual_seed(0)
    x = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(3)).round()
    probe = _model()
    weights = probe.state_dict()
    with torch.no_grad():
        kl_i = probe.kl(probe.encode(x))
    c = {"below": 0.0, "among": kl_i.median().item(), "above": 2 * kl_i.max().item()}[where]
    model = _model(capacity_weight=7.0, capacity_max=2 * c, c_steps=1000) if c \
        else _model(capacity_weight=7.0)
    model.load_state_dict(weights)
    step = 500 if c else 0                  # C(500) = capacity_max / 2 = c; C(0) = 0
    torch.manual_seed(1)
    out = model.loss(x, step)
    torch.manual_seed(1)
    q = model.encode(x)
    recon = -model.decode(q.rsample((1,))).log_prob(x).mean()
    mu, var = q.mean, q.variance
    kl = 0.5 * (var + mu ** 2 - 1 - var.log()).sum(-1).mean()     # closed form, batch mean
    assert out.terms["capacity"].item() == pytest.approx(c)
    assert out.loss.item() == pytest.approx((recon + 7.0 * (kl - c).abs()).item(), rel=1e-5)
    assert out.terms["elbo"].item() == pytest.approx(-(recon + kl).item(), rel=1e-5)
    model.kl_anneal = 0.25       # a KL warm-up tempers the capacity term
    torch.manual_seed(1)
    warm = model.loss(x, step)
    assert warm.loss.item() == pytest.approx((recon + 0.25 * 7.0 * (kl - c).abs()).item(), rel=1e-5)
