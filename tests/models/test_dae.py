"""Denoising autoencoder: corrupt the input with M(x~|x), reconstruct the clean x."""
from __future__ import annotations

import math
import typing

import pytest
import torch

from vaebench.config import ConfigError
from vaebench.corruptions import CORRUPTIONS, masking
from vaebench.models import build_model, validate_model_config
from vaebench.models.dae import DAEConfig

SHAPE = (1, 28, 28)


def _model(**extra):
    block = {"family": "dae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 4,
             "hidden": [16], **extra}
    torch.manual_seed(0)
    return build_model(validate_model_config("m", block), SHAPE)


def _within_binomial(count, n, p, sigmas=5.0):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_masking_zeroes_the_requested_fraction_and_nothing_else():
    x = torch.rand(200, *SHAPE) * 0.9 + 0.1                     # no zeros before masking
    gen = torch.Generator().manual_seed(0)
    out = masking(x, 0.3, gen)
    zeroed = out == 0
    n = x[0].numel()
    assert _within_binomial(int(zeroed.sum()), x.numel(), 0.3)
    per_example = zeroed.flatten(1).sum(1)                      # ~ Binomial(784, 0.3) each
    assert all(_within_binomial(int(c), n, 0.3) for c in per_example)
    assert torch.equal(out[~zeroed], x[~zeroed])                # the other pixels are untouched


def test_loss_encodes_the_corrupted_input_and_scores_the_clean_target():
    model = _model(level=0.4)
    seen = []
    code = model.code
    model.code = lambda inp: (seen.append(inp.detach().clone()), code(inp))[1]
    x = torch.ones(50, *SHAPE)                                  # every 0 in the input is masking
    x_before = x.clone()
    out = model.loss(x, 0)
    (x_tilde,) = seen
    assert torch.equal(x, x_before)                             # the target is never corrupted
    assert _within_binomial(int((x_tilde == 0).sum()), x.numel(), 0.4)
    recon_clean = -model.decode(code(x_tilde)).log_prob(x)
    recon_noisy = -model.decode(code(x_tilde)).log_prob(x_tilde)
    assert torch.allclose(out.loss, recon_clean.mean())
    assert not torch.allclose(out.loss, recon_noisy.mean())


def test_corruption_follows_the_seeded_global_rng():
    model = _model()
    x = torch.rand(8, *SHAPE).round()
    losses = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        losses.append(model.loss(x, 0).loss)
    assert torch.equal(losses[0], losses[1]) and not torch.equal(losses[0], losses[2])


@pytest.mark.parametrize("corruption, level", [("gaussian", 0.5), ("salt_pepper", 0.2)])
def test_every_corruption_trains(corruption, level):
    model = _model(corruption=corruption, level=level)
    out = model.loss(torch.rand(8, *SHAPE).round(), 0)
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.encoder[1].weight.grad.abs().sum() > 0


def test_corruption_choices_are_the_registry():
    assert set(typing.get_args(DAEConfig.model_fields["corruption"].annotation)) == set(CORRUPTIONS)


@pytest.mark.parametrize("extra, match", [
    ({"level": 1.5}, r"level: masking level is a fraction"),
    ({"corruption": "salt_pepper", "level": 1.2}, r"level: salt_pepper level is a fraction"),
    ({"corruption": "gaussian", "level": -0.1}, "level"),
    ({"corruption": "blur"}, "'masking', 'gaussian' or 'salt_pepper'"),
])
def test_bad_parameters_are_config_errors(extra, match):
    with pytest.raises(ConfigError, match=match):
        _model(**extra)


def test_gaussian_sigma_may_exceed_one():
    assert _model(corruption="gaussian", level=1.5).cfg.level == 1.5
