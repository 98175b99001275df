"""Exact encoder Jacobian norms (vaebench.models.jacobian) against closed forms."""
import pytest
import torch
from torch import nn

from vaebench.models import build_model, validate_model_config
from vaebench.models.jacobian import jacobian_frobenius


def _linear(d_in=12, d_out=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d_in, d_out))


def test_linear_map_has_the_frobenius_norm_of_its_weight_at_every_point():
    f = _linear()
    x = torch.rand(7, 3, 2, 2)                               # flattened: 12 inputs
    with torch.no_grad():
        sq = jacobian_frobenius(f, x, chunk=3)
    expected = f[1].weight.pow(2).sum()
    assert sq.shape == (7,)
    torch.testing.assert_close(sq, expected.expand(7), rtol=1e-5, atol=0)
    assert not sq.requires_grad


def test_tanh_layer_matches_the_closed_form_per_example():
    # f(x) = tanh(Wx + b): J = diag(1 - f^2) W, ||J||_F^2 = sum_k (1 - f_k^2)^2 ||W_k||^2
    lin = _linear(6, 3, seed=1)
    f = nn.Sequential(lin, nn.Tanh())
    x = torch.randn(5, 6)
    with torch.no_grad():
        fx = f(x)
        expected = ((1 - fx.pow(2)).pow(2) * lin[1].weight.pow(2).sum(1)).sum(1)
        got = jacobian_frobenius(f, x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backbone,shape,family", [("mlp", (1, 28, 28), "vae"),
                                                   ("conv64", (1, 64, 64), "ae")])
def test_model_encoders_match_autograd_jacobians_and_chunking_does_not_matter(backbone, shape,
                                                                              family):
    torch.manual_seed(0)
    cfg = validate_model_config("m", {"family": family, "dataset": "d", "backbone": backbone,
                                      "latent_dim": 4})
    model = build_model(cfg, shape).eval()
    x = torch.rand(5, *shape)
    with torch.no_grad():
        whole, chunked = (jacobian_frobenius(model.represent, x, chunk=c) for c in (5, 2))
    reference = torch.stack([
        torch.autograd.functional.jacobian(lambda v: model.represent(v[None])[0], xb)
        .pow(2).sum() for xb in x])
    torch.testing.assert_close(whole, reference, rtol=1e-4, atol=1e-10)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-12)


def test_result_is_differentiable_in_the_parameters_when_grad_is_enabled():
    # sum_b ||W||_F^2 over B examples: d/dW = 2 B W (what a contractive penalty needs)
    f = _linear(5, 3, seed=2)
    x = torch.rand(4, 5)
    jacobian_frobenius(f, x, chunk=3).sum().backward()
    torch.testing.assert_close(f[1].weight.grad, 2 * 4 * f[1].weight.detach())


def test_constant_map_has_zero_jacobian_and_bad_arguments_are_errors():
    assert torch.equal(jacobian_frobenius(lambda v: torch.ones(len(v), 3), torch.rand(4, 2)),
                       torch.zeros(4))
    with pytest.raises(ValueError, match="chunk"):
        jacobian_frobenius(_linear(), torch.rand(2, 12), chunk=0)
    with pytest.raises(ValueError, match="codes"):
        jacobian_frobenius(lambda v: v.sum(), torch.rand(2, 12))
