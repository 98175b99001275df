"""The common interface, checked for every registered family, plus closed forms."""
from __future__ import annotations

import math
import typing

import pytest
import torch
from torch.distributions import Distribution

from vaebench.data.base import PreparedData
from vaebench.models import MODELS, build_model, validate_model_config
from vaebench.models.base import Model

SHAPES = {"mlp": (1, 28, 28), "conv64": (1, 64, 64)}
FRAMES = {"tdvae": 12}   # sequence families: time on the channel axis


def _backbones(family: str) -> tuple[str, ...]:
    return typing.get_args(MODELS[family].Config.model_fields["backbone"].annotation)


def _config(family: str, backbone: str = "mlp", **extra):
    own = _backbones(family)
    block = {"family": family, "dataset": "mnist" if backbone == "mlp" else "dsprites",
             # a family with networks of its own (VQ grids) runs them at both image sizes
             "backbone": backbone if backbone in own else own[0], "latent_dim": 4, **extra}
    return validate_model_config("m", block)


def _shape(family: str, backbone: str) -> tuple[int, ...]:
    return (FRAMES.get(family, 1), *SHAPES[backbone][1:])


def _prepared(x: torch.Tensor) -> PreparedData:
    """``x`` (binary images) as the training set the loop hands to ``before_fit``."""
    images, none = x.to(torch.uint8), torch.zeros(len(x), 0, dtype=torch.long)
    meta = {"dataset": "test", "max_value": 1, "image_shape": list(x.shape[1:])}
    return PreparedData("test", meta, images, images, images, none, none)


@pytest.fixture(params=sorted(MODELS))
def family(request):
    return request.param


@pytest.mark.parametrize("backbone", ["mlp", "conv64"])
def test_interface_shapes_and_gradients(family, backbone):
    own = _backbones(family)
    if backbone not in own and set(own) & set(SHAPES):   # offers shared backbones, not this one
        pytest.skip(f"family {family!r} has no {backbone} variant")
    torch.manual_seed(0)
    shape = _shape(family, backbone)
    model = build_model(_config(family, backbone), shape)
    x = torch.rand(3, *shape).round()
    model.before_fit(_prepared(x), binarize=True)     # as the training loop does first
    q = model.encode(x)
    assert isinstance(q, Distribution) and q.mean.shape == (3, model.code_dim)
    z = model.represent(x)
    assert z.shape == (3, model.code_dim)
    px = model.decode(z)
    assert isinstance(px, Distribution)
    assert px.log_prob(x).shape == (3,)
    assert model.reconstruct(x).shape == x.shape
    # the loss as the training loop calls it (models.base.Model.needs_index)
    out = model.loss(x, step=0, **({"index": torch.arange(3)} if model.needs_index else {}))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert all(torch.isfinite(v) for v in out.terms.values())
    out.backward(model.optim_groups())     # as the training loop does (per-group objectives)
    _assert_the_loss_trains_every_stepped_parameter(model)
    if model.probabilistic:
        assert model.prior() is not None
    samples = model.sample(5)
    if model.probabilistic or samples is not None:
        assert samples.shape == (5, *shape)


def _assert_the_loss_trains_every_stepped_parameter(model) -> None:
    """Every parameter the training loop steps (``optim_groups`` of a ``trainable``
    model) has a finite, nonzero gradient of the loss; a parameter it does not step
    (an ex-post code prior, a closed-form fit) must be fitted by ``after_fit``."""
    stepped = ({id(p) for group in model.optim_groups().values() for p in group}
               if model.trainable else set())
    named = dict(model.named_parameters())
    assert stepped <= {id(p) for p in named.values()}
    assert stepped or not model.trainable, "a trainable model with nothing to optimise"
    dead = [n for n, p in named.items() if id(p) in stepped
            and (p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0)]
    assert not dead, f"stepped parameters the loss does not reach (or NaN/zero gradient): {dead}"
    assert all(torch.isfinite(p.grad).all() for p in named.values() if p.grad is not None)
    unstepped = [n for n, p in named.items() if id(p) not in stepped]
    assert not unstepped or type(model).after_fit is not Model.after_fit, (
        f"parameters neither optimised by the loop nor fitted after it: {unstepped}")


def test_vae_kl_is_the_closed_form_of_seed_000():
    """KL(N(mu, sigma^2) || N(0, 1)) = 1/2 sum [sigma^2 + mu^2 - 1 - log sigma^2]."""
    torch.manual_seed(0)
    model = build_model(_config("vae"), SHAPES["mlp"])
    x = torch.rand(5, *SHAPES["mlp"]).round()
    q = model.encode(x)
    mu, var = q.mean, q.variance
    by_hand = 0.5 * (var + mu ** 2 - 1 - var.log()).sum(-1)
    out = model.loss(x, 0)
    assert torch.allclose(out.terms["kl"], by_hand.mean(), atol=1e-5)
    assert torch.allclose(out.terms["elbo"], -(out.terms["recon"] + out.terms["kl"]))


def test_beta_vae_weights_the_kl_term_by_beta():
    torch.manual_seed(0)
    model = build_model(_config("beta_vae", kl_weight=6.0), SHAPES["mlp"])
    x = torch.rand(4, *SHAPES["mlp"]).round()
    torch.manual_seed(1)
    out = model.loss(x, 0)
    assert torch.allclose(out.loss, out.terms["recon"] + 6.0 * out.terms["kl"], atol=1e-4)


def test_ae_loss_is_bernoulli_cross_entropy():
    torch.manual_seed(0)
    model = build_model(_config("ae"), SHAPES["mlp"])
    x = torch.rand(4, *SHAPES["mlp"]).round()
    logits = model.decoder(model.encoder(x))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 4
    assert torch.allclose(model.loss(x, 0).loss, bce, atol=1e-3)


def test_mlp_backbone_is_the_iwae_architecture():
    model = build_model(_config("vae"), SHAPES["mlp"])
    linear = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 200), (200, 200), (200, 8)]
    assert any(isinstance(m, torch.nn.Tanh) for m in model.encoder)


def test_conv64_rejects_other_image_sizes():
    with pytest.raises(ValueError, match="conv64' needs 64x64"):
        build_model(_config("vae", "conv64"), (1, 28, 28))


def test_standard_normal_prior_log_density():
    model = build_model(_config("vae"), SHAPES["mlp"])
    z = torch.zeros(1, 4)
    assert torch.allclose(model.prior().log_prob(z), torch.tensor([-2 * math.log(2 * math.pi)]))
