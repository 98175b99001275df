"""The common interface, checked for every registered family, plus closed forms."""
from __future__ import annotations

import ast
import math
import typing
from pathlib import Path

import pytest
import torch
from torch.distributions import Distribution

from vaebench.data.base import PreparedData
from vaebench.models import MODELS, build_model, validate_model_config
from vaebench.models.base import Model
from vaebench.models.capabilities import (CAPABILITIES, ClosedForm, ExactLikelihood, Generative,
                                          LatentPrior, NotFitted, PerDatapoint)

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
    # the loss as the training loop calls it (per-datapoint state: with the positions)
    out = (model.training_loss(x, 0, torch.arange(3)) if isinstance(model, PerDatapoint)
           else model.loss(x, 0))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert all(torch.isfinite(v) for v in out.terms.values())
    out.backward(model.optim_groups())     # as the training loop does (per-group objectives)
    _assert_the_loss_trains_every_stepped_parameter(model)
    _assert_the_declared_capabilities_work(model, x)


def _fitted_after_training(call):
    """``call()``, or None where it needs the state ``after_fit`` fits (an ex-post prior)."""
    try:
        return call()
    except NotFitted:
        return None


def _assert_the_declared_capabilities_work(model, x) -> None:
    """What each declared capability promises, on the inputs of the interface test."""
    if isinstance(model, LatentPrior):
        prior = _fitted_after_training(model.prior)
        assert prior is None or (isinstance(prior, Distribution)
                                 and prior.sample((2,)).shape == (2, model.code_dim))
    if isinstance(model, Generative):
        samples = _fitted_after_training(lambda: model.sample(5))
        assert samples is None or samples.shape == (5, *x.shape[1:])
        assert samples is not None or type(model).after_fit is not Model.after_fit
    if isinstance(model, ExactLikelihood):
        lp = model.exact_log_prob(x)
        assert lp.shape == (len(x),) and torch.isfinite(lp).all()


# the capability method each mixin asks for (the abstract methods it defines itself)
ASKED_BY = {name: cap for cap in CAPABILITIES for name, member in vars(cap).items()
            if getattr(member, "__isabstractmethod__", False)}


def test_each_family_declares_what_it_implements_and_implements_what_it_declares(family):
    """A declared capability's methods exist (the mixin stays abstract otherwise); a
    capability method without its mixin would never be called by the loop or a stage;
    mixins come before Model in the bases, so Model's old flag aliases never shadow them."""
    cls = MODELS[family]
    assert not cls.__abstractmethods__, f"{family} declares but lacks {set(cls.__abstractmethods__)}"
    assert set(ASKED_BY) == {"sample", "prior", "exact_log_prob", "training_loss"}
    for name, cap in ASKED_BY.items():
        if callable(getattr(cls, name, None)):
            assert issubclass(cls, cap), f"{family} defines {name} but not {cap.__name__}"
    mro = cls.__mro__
    for cap in CAPABILITIES:
        if issubclass(cls, cap):
            assert mro.index(cap) < mro.index(Model), f"{family}: {cap.__name__} after Model"


SRC = Path(__file__).resolve().parents[2] / "src" / "vaebench"
# the class flags the capabilities replaced
OLD_FLAGS = {"probabilistic", "trainable", "needs_index", "eval_every_epoch", "image_inputs",
             "amortised"}


def probes(source: str) -> list[str]:
    """hasattr/getattr calls on a model, and reads of an old flag, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr") and node.args
                and "model" in ast.unparse(node.args[0]).lower()):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Attribute) and node.attr in OLD_FLAGS:
            found.append(f"{node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize("path", ["train.py", "figures.py", "evaluate", "sections", "config.py"])
def test_the_loop_and_stages_test_capabilities_and_probe_nothing(path):
    """No hasattr/getattr on a model and no old flag read in the training loop, the
    figures and the evaluation stages: they use isinstance on the capabilities."""
    files = [SRC / path] if path.endswith(".py") else sorted((SRC / path).rglob("*.py"))
    found = [f"{f.relative_to(SRC)}:{hit}" for f in files for hit in probes(f.read_text())]
    assert files and not found, found


def test_the_probe_rule_sees_each_kind_of_probe():
    source = ("if hasattr(model, 'sample') or getattr(self.model, 'prior', None):\n"
              "    out = model.loss(x, step, **({'index': i} if model.needs_index else {}))\n"
              "ok = isinstance(model, Generative) and getattr(module, 'default_generators', None)\n")
    assert probes(source) == ["1: hasattr(model, 'sample')",
                              "1: getattr(self.model, 'prior', None)", "2: .needs_index"]


def _assert_the_loss_trains_every_stepped_parameter(model) -> None:
    """Every parameter the training loop steps (``optim_groups`` of a ``trainable``
    model) has a finite, nonzero gradient of the loss; a parameter it does not step
    (an ex-post code prior, a closed-form fit) must be fitted by ``after_fit``."""
    stepped = ({id(p) for group in model.optim_groups().values() for p in group}
               if not isinstance(model, ClosedForm) else set())
    named = dict(model.named_parameters())
    assert stepped <= {id(p) for p in named.values()}
    assert stepped or isinstance(model, ClosedForm), "a trainable model with nothing to optimise"
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
