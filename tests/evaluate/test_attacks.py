"""Projected-gradient attacks (vaebench.evaluate.attacks).

Linear-encoder closed forms, z = W x (x flattened), started from x = 0.5 with
eps < 0.5 so the valid-range clipping is never active and the perturbation
only has to stay in the ball:

* L2, code distance ||W delta||: max over ||delta||_2 <= eps is eps * sigma_max(W)
  (at the top right singular vector);
* L-inf, rank-one W = u v^T: ||W delta|| = ||u|| |v . delta| <= eps ||u|| ||v||_1,
  attained at delta = eps sign(v) (a vertex of the cube);
* Gaussian encoder q(z|x) = N(W x, diag(s^2)) with fixed s: KL(q(.|x+delta) || q(.|x))
  = 1/2 ||diag(1/s) W delta||^2, so the L2 worst case is 1/2 eps^2 sigma_max(diag(1/s) W)^2.
"""
import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from vaebench.evaluate.attacks import (NORMS, code_distance, has_kl, latent_objective,
                                       output_objective, pgd, project)
from vaebench.models.base import PointMass


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


class LinearEncoder(nn.Module):
    """Just the parts of the model interface the attacks use."""

    def __init__(self, W, scale=None):
        super().__init__()
        self.W, self.scale = W, scale

    def represent(self, x):
        return x.flatten(1) @ self.W.T                                   # (B, D)

    def encode(self, x):
        if self.scale is None:
            return PointMass(self.represent(x))
        return Independent(Normal(self.represent(x), self.scale.expand(len(x), -1)), 1)

    def decode(self, z):
        return Independent(Normal(z @ self.W, torch.ones(())), 1)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("eps", [0.03, 0.3, 2.0])
def test_attack_stays_in_its_ball_and_in_the_valid_range(norm, eps):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.rand(16, 1, 6, 6)
    x[:4] = torch.bernoulli(x[:4])                           # pixels sitting on the bounds
    objective = lambda v: net(v).pow(2).sum(1)                       # noqa: E731
    res = pgd(objective, x, eps, norm, steps=15, step_size=0.5, generator=_gen())
    start = pgd(objective, x, eps, norm, steps=0, step_size=0.5, generator=_gen())
    flat = res.delta.flatten(1)
    size = flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)
    assert (size <= eps * (1 + 1e-5)).all()
    adv = x + res.delta
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        torch.testing.assert_close(res.value, net(adv).pow(2).sum(1))   # value is at x + delta
    assert (res.value >= start.value).all() and res.value.mean() > start.value.mean()


def test_linear_code_distance_reaches_the_l2_worst_case():
    torch.manual_seed(1)
    W = torch.randn(5, 20)
    x = torch.full((3, 20), 0.5)
    eps = 0.1
    res = pgd(lambda v: ((v - x) @ W.T).norm(dim=1), x, eps, "l2", steps=200, step_size=1.0,
              generator=_gen())
    worst = eps * torch.linalg.matrix_norm(W, ord=2)
    assert (res.value <= worst * (1 + 1e-5)).all()
    torch.testing.assert_close(res.value, worst.expand(3), rtol=1e-3, atol=0)


def test_rank_one_code_distance_reaches_the_linf_worst_case():
    torch.manual_seed(2)
    u, v = torch.randn(4), torch.randn(30)
    W = torch.outer(u, v)
    x = torch.full((3, 30), 0.5)
    eps = 0.05
    res = pgd(lambda a: ((a - x) @ W.T).norm(dim=1), x, eps, "linf", steps=10, step_size=0.25,
              generator=_gen())
    worst = eps * u.norm() * v.abs().sum()
    torch.testing.assert_close(res.value, worst.expand(3), rtol=1e-5, atol=0)
    torch.testing.assert_close(res.delta, (eps * v.sign()).expand(3, -1) * res.delta[:, :1].sign()
                               * v[0].sign())


def test_latent_attack_on_a_gaussian_linear_encoder_reaches_the_kl_worst_case():
    torch.manual_seed(3)
    W, s = torch.randn(4, 16), torch.rand(4) + 0.5
    model = LinearEncoder(W, s)
    x = torch.full((2, 1, 4, 4), 0.5)
    objective, kind = latent_objective(model, x)
    assert kind == "kl"
    eps = 0.2
    res = pgd(objective, x, eps, "l2", steps=200, step_size=1.0, generator=_gen())
    worst = 0.5 * eps ** 2 * torch.linalg.matrix_norm(W / s[:, None], ord=2) ** 2
    torch.testing.assert_close(res.value, worst.expand(2), rtol=1e-3, atol=0)


def test_latent_attack_on_a_deterministic_encoder_uses_the_relative_code_distance():
    torch.manual_seed(4)
    W = torch.randn(3, 16)
    model = LinearEncoder(W)
    x = torch.full((2, 1, 4, 4), 0.5)
    objective, kind = latent_objective(model, x)
    assert kind == "code_dist"
    res = pgd(objective, x, 0.1, "l2", steps=200, step_size=1.0, generator=_gen())
    worst = 0.1 * torch.linalg.matrix_norm(W, ord=2) / model.represent(x).norm(dim=1)
    torch.testing.assert_close(res.value, worst, rtol=1e-3, atol=0)


def test_output_attack_measures_the_squared_change_of_the_reconstruction():
    # reconstruction = W^T W x, so the L2 worst case is eps^2 sigma_max(W^T W)^2 = eps^2 s_max^4
    torch.manual_seed(5)
    W = torch.randn(3, 16) * 0.5
    model = LinearEncoder(W, torch.ones(3))
    x = torch.full((2, 1, 4, 4), 0.5)
    res = pgd(output_objective(model, x), x, 0.1, "l2", steps=200, step_size=1.0,
              generator=_gen())
    worst = 0.1 ** 2 * torch.linalg.matrix_norm(W, ord=2) ** 4
    torch.testing.assert_close(res.value, worst.expand(2), rtol=1e-3, atol=0)


@pytest.mark.parametrize("norm", NORMS)
def test_zero_eps_gives_zero_displacement_and_seeds_fix_the_start(norm):
    model = LinearEncoder(torch.randn(3, 16, generator=_gen(7)))
    x = torch.rand(4, 1, 4, 4, generator=_gen(8))
    objective = latent_objective(model, x)[0]
    zero = pgd(objective, x, 0.0, norm, steps=5, step_size=0.5, generator=_gen())
    assert torch.equal(zero.delta, torch.zeros_like(x)) and torch.equal(zero.value, torch.zeros(4))
    a, b, c = (pgd(objective, x, 0.1, norm, steps=0, step_size=0.5, generator=_gen(s))
               for s in (1, 1, 2))
    assert torch.equal(a.delta, b.delta) and not torch.equal(a.delta, c.delta)


def test_projection_and_divergence_helpers():
    x = torch.full((1, 4), 0.9)
    d = project(torch.tensor([[3.0, -4.0, 0.0, 0.0]]), x, 1.0, "l2")
    torch.testing.assert_close(d, torch.tensor([[0.1, -0.8, 0.0, 0.0]]))   # ball, then range
    assert has_kl(Independent(Normal(torch.zeros(2, 3), 1.0), 1))
    assert not has_kl(PointMass(torch.zeros(2, 3)))
    dist = code_distance(torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 5.0]]))
    torch.testing.assert_close(dist, torch.tensor([10 ** 0.5 / 5]))
    with pytest.raises(ValueError, match="norm"):
        pgd(lambda v: v.sum(1), x, 0.1, "l1", steps=1, step_size=0.5)
