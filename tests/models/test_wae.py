"""WAE-MMD (Tolstikhin et al. 2018): a deterministic encoder, loss = recon + lam * MMD^2."""
from __future__ import annotations

import pytest
import torch

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config
from vaebench.models.base import PointMass
from vaebench.models.mmd import mmd2

SHAPE = (1, 28, 28)


def _model(**extra):
    block = {"family": "wae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 4, **extra}
    return build_model(validate_model_config("m", block), SHAPE)


def _x(n=6):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(3)).round()


def test_encoder_is_deterministic_and_per_example():
    torch.manual_seed(0)
    model, x = _model(), _x()
    q = model.encode(x)
    assert isinstance(q, PointMass) and torch.equal(q.variance, torch.zeros(6, 4))
    assert torch.equal(model.represent(x), model.represent(x))             # same x -> same z
    assert torch.allclose(model.represent(x[:2]), model.represent(x)[:2], atol=1e-6)
    assert torch.equal(q.rsample((3,))[1], q.mean)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_loss_is_recon_plus_lam_times_mmd_to_prior_draws(kernel):
    """The prior draws are the next B x D standard normals of the global RNG."""
    torch.manual_seed(0)
    model, x = _model(mmd_weight=7.0, kernel=kernel, kernel_sigma=0.5), _x()
    z = model.code(x)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        model.decoder(z), x, reduction="sum") / len(x)
    torch.manual_seed(11)
    by_hand = mmd2(z, torch.randn(6, 4), kernel, 2 * 4 * 0.5 ** 2)
    torch.manual_seed(11)
    out = model.loss(x, 0)
    assert out.terms["recon"].item() == pytest.approx(bce.item(), rel=1e-5)
    assert out.terms["mmd"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx((bce + 7.0 * by_hand).item(), rel=1e-5)


def test_lam_zero_is_the_plain_autoencoder():
    torch.manual_seed(0)
    wae = _model(mmd_weight=0.0)
    ae = build_model(validate_model_config("a", {"family": "ae", "dataset": "mnist",
                                                 "backbone": "mlp", "latent_dim": 4}), SHAPE)
    ae.load_state_dict(wae.state_dict())
    assert wae.loss(_x(), 0).loss.item() == pytest.approx(ae.loss(_x(), 0).loss.item(), rel=1e-6)


def test_the_mmd_term_pulls_shifted_codes_back_towards_the_prior():
    """Codes N(0, I) + s: d MMD^2 / ds has the sign of s, so descent moves them to 0."""
    torch.manual_seed(0)
    noise, prior = torch.randn(32, 4), torch.randn(32, 4)
    for start in (5.0, -5.0, 1.0):
        s = torch.tensor(start, requires_grad=True)
        mmd2(noise + s, prior, "imq", 8.0).backward()
        assert s.grad.sign().item() == (1.0 if start > 0 else -1.0)


def test_a_bounded_code_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"models\.m\.code_activation"):
        _model(code_activation="sigmoid")
