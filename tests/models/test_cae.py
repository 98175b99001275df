"""Contractive autoencoder: the penalty is the exact ||J_f(x)||_F^2 (closed form and vectorised)."""
from __future__ import annotations

import pytest
import torch

from vaebench.models import build_model, validate_model_config
from vaebench.models.cae import closed_form_sq_norm

SHAPE = (1, 6, 6)


def brute_force_sq_norm(fn, x, create_graph=False):
    """sum_ij (d fn(x)_j / d x_i)^2 per example: one torch.autograd.grad per (example, output)."""
    x = x.detach().clone().requires_grad_(True)
    z = fn(x)
    rows = []
    for b in range(len(x)):
        total = 0.0
        for j in range(z.shape[1]):
            (g,) = torch.autograd.grad(z[b, j], x, retain_graph=True, create_graph=create_graph)
            total = total + g[b].pow(2).sum()
        rows.append(total)
    return torch.stack(rows)


def _cae(**extra):
    block = {"family": "cae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 4, **extra}
    torch.manual_seed(0)
    return build_model(validate_model_config("m", block), SHAPE)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "linear"])
def test_single_layer_uses_the_closed_form_and_it_equals_autograd(activation):
    model = _cae(hidden=[], code_activation=activation)
    assert model.single_layer
    x = torch.rand(5, *SHAPE)
    closed = model.contraction(x)
    assert torch.allclose(closed, brute_force_sq_norm(model.code, x), rtol=1e-5)
    if activation == "sigmoid":   # sum_j (h_j (1 - h_j))^2 sum_i W_ji^2, written out
        h, w = model.code(x), model.encoder[-1].weight
        by_hand = ((h * (1 - h)) ** 2 * (w ** 2).sum(1)).sum(1)
        assert torch.allclose(closed, by_hand)


def test_closed_form_function_on_a_hand_example():
    weight = torch.tensor([[1.0, 2.0], [0.0, 3.0]])          # (D=2, inputs=2)
    grad_h = torch.tensor([[0.5, 0.1]])                       # a'(h) for one example
    # (0.5^2)(1 + 4) + (0.1^2)(9) = 1.25 + 0.09
    assert closed_form_sq_norm(None, weight, grad_h).item() == pytest.approx(1.34)


def test_deep_encoder_uses_the_vectorised_jacobian_and_it_equals_autograd():
    model = _cae(hidden=[8, 7])
    assert not model.single_layer
    x = torch.rand(4, *SHAPE)
    assert torch.allclose(model.contraction(x), brute_force_sq_norm(model.code, x), rtol=1e-4)


def test_conv64_encoder_uses_the_same_exact_jacobian():
    block = {"family": "cae", "dataset": "dsprites", "backbone": "conv64", "latent_dim": 2,
             "hidden": [16]}
    torch.manual_seed(0)
    model = build_model(validate_model_config("m", block), (1, 64, 64))
    x = torch.rand(2, 1, 64, 64).round()
    assert torch.allclose(model.contraction(x), brute_force_sq_norm(model.code, x), rtol=1e-4)


@pytest.mark.parametrize("hidden", [[], [8, 7]])
def test_loss_is_recon_plus_lambda_times_the_norm_on_the_first_m_examples(hidden):
    model = _cae(hidden=hidden, contraction_weight=0.7, jacobian_examples=2)
    x = torch.rand(5, *SHAPE).round()
    out = model.loss(x, 0)
    recon = -model.decode(model.code(x)).log_prob(x)
    jac = brute_force_sq_norm(model.code, x[:2]).mean()
    assert torch.allclose(out.terms["jacobian_sq_norm"], jac, rtol=1e-4)
    assert torch.allclose(out.loss, recon.mean() + 0.7 * jac, rtol=1e-5)


def test_penalty_gradient_matches_double_backward():
    model = _cae(hidden=[8], contraction_weight=1.0)
    x = torch.rand(3, *SHAPE)
    params = list(model.encoder.parameters())
    grad = lambda y: torch.autograd.grad(y, params, allow_unused=True, materialize_grads=True)  # noqa: E731
    fast = grad(model.contraction(x).mean())
    slow = grad(brute_force_sq_norm(model.code, x, create_graph=True).mean())
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(fast, slow))


def test_evaluation_under_no_grad_gives_the_same_penalty():
    model = _cae(hidden=[8])
    x = torch.rand(3, *SHAPE).round()
    with torch.no_grad():
        evaluated = model.loss(x, 0)
    trained = model.loss(x, 0)
    assert torch.allclose(evaluated.loss, trained.loss.detach())


def test_a_larger_lambda_trains_a_less_sensitive_code():
    """Same data, same seed: the penalty weight is what lowers ||J||^2 after training."""
    x = torch.rand(64, *SHAPE).round()
    norms = {}
    for lam in (0.0, 1.0):
        model = _cae(hidden=[8], contraction_weight=lam)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(40):
            opt.zero_grad()
            model.loss(x, step).loss.backward()
            opt.step()
        norms[lam] = model.contraction(x).mean().item()
    assert norms[1.0] < 0.5 * norms[0.0]


def test_bad_parameters_are_config_errors():
    from vaebench.config import ConfigError
    with pytest.raises(ConfigError, match="contraction_weight"):
        _cae(contraction_weight=-1.0)
    with pytest.raises(ConfigError, match="jacobian_examples"):
        _cae(jacobian_examples=0)
