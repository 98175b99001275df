"""Sparse autoencoder: the KL(s || s^_j) penalty (Ng 2011) on mean activations."""
from __future__ import annotations

import math

import pytest
import torch

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config
from vaebench.models.sparse_ae import sparsity_penalty

SHAPE = (1, 28, 28)


def _model(**extra):
    block = {"family": "sparse_ae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 6,
             "hidden": [10, 8], **extra}
    torch.manual_seed(0)
    return build_model(validate_model_config("m", block), SHAPE)


def _bernoulli_kl(s, s_hat):
    return s * math.log(s / s_hat) + (1 - s) * math.log((1 - s) / (1 - s_hat))


def test_penalty_is_the_closed_form_bernoulli_kl_on_a_hand_made_matrix():
    activations = torch.tensor([[0.1, 0.9, 0.5, 0.02],
                                [0.3, 0.7, 0.5, 0.08]])      # column means 0.2, 0.8, 0.5, 0.05
    expected = sum(_bernoulli_kl(0.05, m) for m in (0.2, 0.8, 0.5, 0.05))
    assert sparsity_penalty(activations, 0.05).item() == pytest.approx(expected, rel=1e-5)
    assert sparsity_penalty(torch.full((3, 5), 0.3), 0.3).item() == pytest.approx(0.0, abs=1e-6)


def test_loss_adds_beta_times_the_penalty_of_each_chosen_layer():
    model = _model(sparsity_weight=2.5, sparsity_target=0.1, sparse_layers=["code", 1])
    x = torch.rand(7, *SHAPE).round()
    out = model.loss(x, 0)
    h2 = x
    for module in list(model.encoder)[:5]:                 # flatten, linear, tanh, linear, tanh
        h2 = module(h2)
    code = torch.sigmoid(model.encoder(x))
    kl = sparsity_penalty(code, 0.1) + sparsity_penalty((1 + h2) / 2, 0.1)
    recon = -model.decode(code).log_prob(x).mean()
    assert torch.allclose(out.terms["sparsity_kl"], kl, rtol=1e-5)
    assert torch.allclose(out.loss, recon + 2.5 * kl, rtol=1e-5)


def test_code_is_sigmoid_and_the_penalty_lowers_mean_activation():
    x = torch.rand(64, *SHAPE).round()
    means = {}
    for beta in (0.0, 5.0):
        model = _model(sparsity_weight=beta)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(40):
            opt.zero_grad()
            model.loss(x, step).loss.backward()
            opt.step()
        code = model.represent(x)
        assert ((code > 0) & (code < 1)).all()
        means[beta] = code.mean().item()
    assert means[5.0] < 0.15 < means[0.0]


@pytest.mark.parametrize("extra, match", [
    ({"sparse_layers": [2]}, r"2 hidden layer\(s\), valid indices 0..1"),
    ({"sparse_layers": ["code", "code"]}, "distinct"),
    ({"sparse_layers": []}, "sparse_layers"),
    ({"sparsity_target": 1.0}, "sparsity_target"),
    ({"code_activation": "linear"}, "code_activation"),
    ({"sparsity_weight": -1}, "sparsity_weight"),
])
def test_bad_parameters_are_config_errors(extra, match):
    with pytest.raises(ConfigError, match=match):
        _model(**extra)


def test_hidden_layer_sparsity_needs_the_mlp_backbone():
    block = {"family": "sparse_ae", "dataset": "dsprites", "backbone": "conv64", "latent_dim": 4,
             "sparse_layers": [0]}
    with pytest.raises(ConfigError, match="allows only"):
        validate_model_config("m", block)
