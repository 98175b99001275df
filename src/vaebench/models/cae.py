"""Contractive autoencoder (Rifai et al. 2011, "Contractive Auto-Encoders: Explicit
Invariance During Feature Extraction", ICML).

The loss adds the squared Frobenius norm of the Jacobian of the code h = f(x)
w.r.t. the input, which makes the code insensitive to small input changes:

    L_CAE = L_recon + lambda * ||J_f(x)||_F^2,   ||J_f(x)||_F^2 = sum_ij (d h_j / d x_i)^2,

lambda = ``contraction_weight``.

Computed exactly, per example. For a single layer h = a(W x + b) (``hidden: []``)
the closed form is ||J||_F^2 = sum_j a'(h_j)^2 sum_i W_ji^2, with a'(h) = h(1 - h)
for the sigmoid code. Deeper encoders use the exact Jacobian of
:mod:`vaebench.models.jacobian` (one backward pass per code unit, each vectorised over
the minibatch, differentiable for training), which costs about D backward passes and
their double-backward per step; ``jacobian_examples`` = m computes it on the first m
examples of each (randomly drawn) minibatch only -- each term still exact, their mean an
unbiased estimate of the minibatch mean -- to bound that cost.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import nn

from vaebench.models.ae import AE, AEConfig
from vaebench.models.base import LossTerms
from vaebench.models.jacobian import jacobian_frobenius


def closed_form_sq_norm(h: torch.Tensor, weight: torch.Tensor, grad_h: torch.Tensor) -> torch.Tensor:
    """||J||_F^2 (B,) of h = a(W x + b): sum_j a'_j^2 sum_i W_ji^2, a'_j = grad_h (B, D)."""
    return grad_h.pow(2) @ weight.pow(2).sum(1)                       # (B, D) @ (D,)


class CAEConfig(AEConfig):
    family: Literal["cae"] = "cae"
    code_activation: Literal["linear", "sigmoid", "tanh"] = "sigmoid"
    contraction_weight: NonNegativeFloat = Field(
        0.1, description="the weight of the contraction penalty ||J||_F^2; "
                         "lambda in Rifai et al. 2011")
    jacobian_examples: PositiveInt | None = None  # None: every example of the minibatch
    renamed = {"lam": "contraction_weight"}


class CAE(AE):
    Config = CAEConfig

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        layers = [m for m in self.encoder if not isinstance(m, nn.Flatten)]
        # a single affine layer: the closed form applies
        self.single_layer = len(layers) == 1 and isinstance(layers[0], nn.Linear)

    def contraction(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """||J_f(x)||_F^2 per example (B,); ``h`` = code(x) when already computed."""
        if self.single_layer:
            h = self.code(x) if h is None else h
            return closed_form_sq_norm(h, self.encoder[-1].weight, self.activation_grad(h))
        return jacobian_frobenius(self.code, x)

    def loss(self, x, step):
        z = self.code(x)                                              # (B, D)
        recon = self.recon(z, x)                                      # (B,)
        m = self.cfg.jacobian_examples or len(x)
        jac = self.contraction(x[:m], z[:m])                          # (m,)
        return LossTerms(recon.mean() + self.cfg.contraction_weight * jac.mean(),
                         {"recon": recon.mean(), "jacobian_sq_norm": jac.mean()})


MODEL = CAE
