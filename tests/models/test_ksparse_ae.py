"""k-sparse autoencoder: exactly k non-zero code units, gradients only through them."""
from __future__ import annotations

import pytest
import torch

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config
from vaebench.models.ksparse_ae import keep_top_k

SHAPE = (1, 28, 28)


def _model(**extra):
    block = {"family": "ksparse_ae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 8,
             "top_k": 3, **extra}
    torch.manual_seed(0)
    return build_model(validate_model_config("m", block), SHAPE)


def test_codes_have_exactly_k_nonzeros_the_k_largest():
    model = _model()
    x = torch.rand(20, *SHAPE).round()
    pre = model.encoder(x)                                   # (20, 8) linear code
    code = model.represent(x)
    assert ((code != 0).sum(1) == 3).all()
    kept = code != 0
    # every kept unit is at least as large as every dropped one, and kept values are unchanged
    assert (pre.masked_fill(~kept, float("inf")).amin(1) >= pre.masked_fill(kept, -float("inf")).amax(1)).all()
    assert torch.equal(code[kept], pre[kept])


def test_keep_top_k_on_a_hand_example():
    z = torch.tensor([[0.5, -2.0, 3.0, 1.0], [-1.0, -3.0, -2.0, -0.5]])
    expected = torch.tensor([[0.0, 0.0, 3.0, 1.0], [-1.0, 0.0, 0.0, -0.5]])
    assert torch.equal(keep_top_k(z, 2), expected)


def test_no_gradient_reaches_the_dropped_units():
    model = _model()
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["pre"] = output
    model.encoder.register_forward_hook(keep)
    x = torch.rand(10, *SHAPE).round()
    model.loss(x, 0).loss.backward()
    pre = captured["pre"]
    dropped = keep_top_k(pre.detach(), 3) == 0
    assert (pre.grad[dropped] == 0).all()
    assert (pre.grad[~dropped] != 0).float().mean() > 0.9


def test_k_is_validated_and_defaults_to_a_quarter_of_the_code():
    with pytest.raises(ConfigError, match=r"top_k: must satisfy 1 <= top_k <= latent_dim = 8"):
        _model(top_k=9)
    with pytest.raises(ConfigError, match="top_k"):
        _model(top_k=0)
    assert validate_model_config("m", {"family": "ksparse_ae", "dataset": "mnist",
                                       "backbone": "mlp", "latent_dim": 8}).kept == 2
