"""Adversarial attacks by projected gradient ascent (Madry et al. 2018, "Towards Deep
Learning Models Resistant to Adversarial Attacks", arXiv:1706.06083), aimed at the
code (as in Tabacof, Tavares & Valle 2016, "Adversarial Images for Variational
Autoencoders", but untargeted) or at the reconstruction.

:func:`pgd` is the pure attack: given an objective o(x) -> (B,) it looks for a
perturbation delta with ||delta|| <= eps (L2 or L-infinity) and x + delta in the
valid range [lo, hi] that maximises o(x + delta), per example:

* start: a seeded random point of the ball (L-inf: uniform in the cube; L2:
  uniform in the ball, direction ~ N(0, I) normalised, radius eps * u^(1/d)),
  projected onto the valid range -- deterministic for a fixed generator;
* step (``steps`` times, step length ``step_size * eps``): L-inf moves by the
  sign of the gradient, L2 along the gradient normalised per example;
* projection: back onto the ball (L-inf: clamp each coordinate; L2: rescale to
  radius eps), then onto the valid range by clamping x + delta. For L-inf both
  sets are boxes, so this is the exact projection onto their intersection; for
  L2, clamping towards the box [lo - x, hi - x], which contains 0, only shrinks
  coordinates, so the point stays inside the ball as well;
* the best value met along the way is kept for each example.

The objectives the robustness stage attacks (built from the common model
interface only, so every family is attacked the same way):

* latent attack -- the divergence of q(z | x + delta) from q(z | x):
  KL(q(z|x+delta) || q(z|x)) where ``torch.distributions`` has the KL registered
  for the encoder's distribution (Gaussian encoders), otherwise the relative code
  distance ||r(x+delta) - r(x)|| / ||r(x)|| of ``represent`` (point masses);
* output attack -- the change of the reconstruction ||x^(x+delta) - x^(x)||^2
  (sum over pixels), x^ = mean of p(x | z = represent(x)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch.distributions import Distribution, kl_divergence

Norm = Literal["l2", "linf"]
NORMS: tuple[str, ...] = ("l2", "linf")
Objective = Callable[[torch.Tensor], torch.Tensor]    # (B, ...) -> (B,)


@dataclass
class AttackResult:
    delta: torch.Tensor    # (B, ...) the best perturbation found per example
    value: torch.Tensor    # (B,) the objective at x + delta


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of every example, shaped to broadcast against t: (B, 1, ..., 1)."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def project(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm,
            lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Bring delta back into the eps-ball of ``norm`` and x + delta into [lo, hi]."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    elif norm == "l2":
        delta = delta * (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    else:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return (x + delta).clamp(lo, hi) - x


def random_start(x: torch.Tensor, eps: float, norm: Norm,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniform random point of the eps-ball around 0 (before range projection)."""
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return eps * (2 * u - 1)
    if norm == "l2":
        d = x[0].numel()
        g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        r = torch.rand((len(x),), generator=generator, device=x.device, dtype=x.dtype)
        radius = (eps * r.pow(1.0 / d)).view(-1, *([1] * (x.ndim - 1)))
        return g / _per_example_norm(g).clamp_min(1e-12) * radius
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def pgd(objective: Objective, x: torch.Tensor, eps: float, norm: Norm, steps: int,
        step_size: float, generator: torch.Generator | None = None,
        lo: float = 0.0, hi: float = 1.0) -> AttackResult:
    """Maximise ``objective(x + delta)`` over the eps-ball of ``norm`` and the range [lo, hi].

    ``step_size`` is the length of one step as a fraction of eps. With eps = 0
    the objective is evaluated at x itself.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if eps < 0 or steps < 0 or step_size <= 0:
        raise ValueError(f"need eps >= 0, steps >= 0, step_size > 0 "
                         f"(got eps={eps}, steps={steps}, step_size={step_size})")
    x = x.detach()
    if eps == 0:
        with torch.no_grad():
            return AttackResult(torch.zeros_like(x), objective(x).detach())
    delta = project(random_start(x, eps, norm, generator), x, eps, norm, lo, hi)
    best_delta, best = delta.clone(), torch.full((len(x),), -torch.inf, device=x.device)
    alpha = step_size * eps
    for step in range(steps + 1):
        delta.requires_grad_(True)
        with torch.enable_grad():
            value = objective(x + delta)                               # (B,)
            grad = (torch.autograd.grad(value.sum(), delta)[0]
                    if step < steps else None)
        value = value.detach()
        delta = delta.detach()
        better = value > best
        best = torch.where(better, value, best)
        best_delta[better] = delta[better]
        if grad is None:
            break
        if norm == "linf":
            delta = delta + alpha * grad.sign()
        else:
            delta = delta + alpha * grad / _per_example_norm(grad).clamp_min(1e-12)
        delta = project(delta, x, eps, norm, lo, hi)
    return AttackResult(best_delta, best)


# --- latent displacement and the objectives of the robustness stage -----------

def has_kl(q: Distribution) -> bool:
    """Whether ``torch.distributions`` has KL(q || q') registered for q's type."""
    try:
        kl_divergence(q, q)
    except NotImplementedError:
        return False
    return True


def input_differentiable(model, x: torch.Tensor) -> bool:
    """Whether ``represent`` has a gradient path back to its input (False for inference
    that returns detached codes, e.g. per-datapoint optimisation): without one the
    encoder Jacobian and gradient attacks are not defined."""
    with torch.enable_grad():
        xi = x[:2].detach().requires_grad_(True)
        r = model.represent(xi)
        if not r.requires_grad:
            return False
        return torch.autograd.grad(r.sum(), xi, allow_unused=True)[0] is not None


def code_distance(r_new: torch.Tensor, r_ref: torch.Tensor) -> torch.Tensor:
    """Relative code distance ||r_new - r_ref|| / ||r_ref|| per example: (B,)."""
    return (r_new - r_ref).flatten(1).norm(dim=1) / r_ref.flatten(1).norm(dim=1).clamp_min(1e-12)


def reconstruction(model, x: torch.Tensor) -> torch.Tensor:
    """Mean of p(x | z = represent(x)) -- ``Model.reconstruct`` without its no_grad,
    so attacks can differentiate through it."""
    return model.decode(model.represent(x)).mean


def latent_objective(model, x: torch.Tensor) -> tuple[Objective, str]:
    """(objective of the latent attack at x, its name: 'kl' or 'code_dist')."""
    with torch.no_grad():
        q_ref = model.encode(x)
        if has_kl(q_ref):
            return (lambda xa: kl_divergence(model.encode(xa), q_ref)), "kl"
        r_ref = model.represent(x)
    return (lambda xa: code_distance(model.represent(xa), r_ref)), "code_dist"


def output_objective(model, x: torch.Tensor) -> Objective:
    """Objective of the output attack at x: squared change of the reconstruction, (B,)."""
    with torch.no_grad():
        ref = reconstruction(model, x)
    return lambda xa: (reconstruction(model, xa) - ref).pow(2).flatten(1).sum(1)
