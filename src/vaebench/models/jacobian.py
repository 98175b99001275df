"""Exact encoder Jacobians (for the contractive autoencoder, Rifai et al. 2011).

The contractive penalty and the robustness evaluation both need the squared
Frobenius norm of the Jacobian of a code map f: R^{C x H x W} -> R^D at every
example,

    ||J_f(x)||_F^2 = sum_{k, i} (d f_k(x) / d x_i)^2 .

It is computed exactly, not estimated. Because f acts on every example of a
batch independently, the gradient of the batch sum of one code unit,
g_k(x) = sum_b f_k(x_b), with respect to the whole batch holds row k of every
example's Jacobian side by side,

    d g_k / d x_{b, i} = d f_k(x_b) / d x_{b, i},

so D backward passes through one forward graph give all B Jacobians. (This is
what ``torch.func.jacrev`` vectorises; the plain loop is as fast for the code
sizes here -- D <= a few hundred -- and avoids the seconds-long one-off import
of ``torch._dynamo`` that the first ``torch.func`` call triggers in every
process.) The batch is split into chunks of ``chunk`` examples to bound the
memory of the graph.

When gradients are enabled at the call, the result is differentiable with
respect to the parameters of ``fn`` (``create_graph``), so a training penalty
can back-propagate through it; under ``torch.no_grad()`` it is a plain tensor.
"""
from __future__ import annotations

from typing import Callable

import torch


def jacobian_frobenius(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       chunk: int = 64) -> torch.Tensor:
    """Squared Frobenius norm ||J_fn(x_b)||_F^2 of every example: (B,).

    ``fn`` maps a batch (B, ...) to codes (B, D) and must treat examples
    independently (no batch statistics, e.g. batch norm in training mode).
    Take ``.sqrt()`` of the result for the (unsquared) norm.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of examples, got {chunk}")
    if x.ndim < 2:
        raise ValueError(f"x must be a batch (B, ...), got shape {tuple(x.shape)}")
    differentiable = torch.is_grad_enabled()
    out = []
    for xb in x.split(chunk):
        with torch.enable_grad():
            xb = xb.detach().requires_grad_(True)
            z = fn(xb)                                              # (b, D)
            if z.ndim != 2 or len(z) != len(xb):
                raise ValueError(f"fn must map (B, ...) to codes (B, D), got {tuple(z.shape)}")
            total = xb.new_zeros(len(xb))
            for k in range(z.shape[1] if z.requires_grad else 0):   # constant fn: J = 0
                row, = torch.autograd.grad(z[:, k].sum(), xb, retain_graph=True,
                                           create_graph=differentiable, allow_unused=True)
                if row is not None:                                  # (b, ...)
                    total = total + row.pow(2).flatten(1).sum(1)
        out.append(total if differentiable else total.detach())
    return torch.cat(out)
