"""RAE-L2 (Ghosh et al. 2020): recon + beta/2 ||z||^2 + lam ||theta_dec||^2, deterministic."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import MixtureSameFamily

from vaebench.models import build_model, validate_model_config
from vaebench.models.base import PointMass
from vaebench.models.capabilities import NotFitted

SHAPE = (1, 28, 28)


def _model(**extra):
    block = {"family": "rae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 4, **extra}
    return build_model(validate_model_config("m", block), SHAPE)


def _x(n=5):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(3)).round()


def test_encoder_is_deterministic_and_per_example():
    torch.manual_seed(0)
    model, x = _model(), _x()
    assert isinstance(model.encode(x), PointMass)
    assert torch.equal(model.represent(x), model.represent(x))
    assert torch.allclose(model.represent(x[:1]), model.represent(x)[:1], atol=1e-6)


def test_loss_by_hand():
    torch.manual_seed(0)
    model, x = _model(code_weight=0.3, decoder_weight=0.01), _x()
    z = model.encoder(x)                                       # linear code
    recon = torch.nn.functional.binary_cross_entropy_with_logits(
        model.decoder(z), x, reduction="sum") / len(x)
    code = 0.5 * (z ** 2).sum() / len(x)
    theta = sum((p ** 2).sum() for n, p in model.named_parameters() if n.startswith("decoder."))
    out = model.loss(x, 0)
    assert out.loss.item() == pytest.approx((recon + 0.3 * code + 0.01 * theta).item(), rel=1e-5)
    assert out.terms["code_sq_norm"].item() == pytest.approx(code.item(), rel=1e-5)
    assert out.terms["decoder_sq_norm"].item() == pytest.approx(theta.item(), rel=1e-5)


def test_decoder_regulariser_adds_two_lam_theta_to_decoder_gradients_only():
    torch.manual_seed(0)
    plain, x = _model(decoder_weight=0.0), _x()
    decayed = _model(decoder_weight=0.5)
    decayed.load_state_dict(plain.state_dict())
    plain.loss(x, 0).loss.backward()
    decayed.loss(x, 0).loss.backward()
    for (name, p), q in zip(plain.named_parameters(), decayed.parameters()):
        extra = 2 * 0.5 * p.detach() if name.startswith("decoder.") else torch.zeros_like(p)
        assert torch.allclose(q.grad - p.grad, extra, atol=1e-4), name


def test_samples_come_from_the_ex_post_mixture():
    """No prior until after_fit fits the mixture (here: set by hand, K = 2 at +-3)."""
    torch.manual_seed(0)
    model = _model(expost_components=2)
    with pytest.raises(NotFitted, match="after_fit"):
        model.prior()
    with pytest.raises(NotFitted):
        model.sample(3)
    model.expost_means.copy_(torch.tensor([[3.0] * 4, [-3.0] * 4]))
    model.expost_fitted.fill_(True)
    assert isinstance(model.prior(), MixtureSameFamily)
    z = model.prior().sample((400,))
    assert ((z.mean(-1).abs() - 3).abs() < 1.5).float().mean() > 0.99    # near one of the means
    assert model.sample(3).shape == (3, *SHAPE)
