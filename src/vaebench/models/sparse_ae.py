"""Sparse autoencoder (Ng 2011, "Sparse autoencoder", CS294A course notes).

Sigmoid code units, and a penalty that keeps each unit's mean activation over the
minibatch, s^_j = (1/n) sum_i a_j(x_i), near a small target s (default 0.05):

    L_SAE = L_recon + beta * sum_l sum_j KL(s || s^_j^(l)),
    KL(s || s^) = s log(s / s^) + (1 - s) log((1 - s) / (1 - s^)),

with beta = ``sparsity_weight``, the KL between Bernoulli(s) and Bernoulli(s^)
(torch.distributions). A unit is active near 1 and inactive near 0.

``sparse_layers`` picks the layers l the penalty applies to: ``code`` (the sigmoid
code) and/or integers i, the i-th hidden layer of the ``mlp`` encoder (0 = the
first). Hidden units are tanh, in (-1, 1); they enter the penalty as
(1 + tanh(u)) / 2 = sigmoid(2u), i.e. as the sigmoid unit they are up to scale,
so "inactive" means tanh near -1. conv64's hidden ReLU units are unbounded and
have no Bernoulli reading, so only ``code`` applies there.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, model_validator
from torch import nn
from torch.distributions import Bernoulli, kl_divergence

from vaebench.models.ae import AE, AEConfig
from vaebench.models.base import LossTerms
from vaebench.models.nets import BACKBONES


def sparsity_penalty(activations: torch.Tensor, target: float) -> torch.Tensor:
    """sum_j KL(Bernoulli(s) || Bernoulli(s^_j)), s^_j the mean of column j of (B, J)."""
    s_hat = activations.mean(0)                                       # (J,)
    return kl_divergence(Bernoulli(probs=torch.full_like(s_hat, target)),
                         Bernoulli(probs=s_hat)).sum()


class SparseAEConfig(AEConfig):
    family: Literal["sparse_ae"] = "sparse_ae"
    code_activation: Literal["sigmoid"] = "sigmoid"
    sparsity_target: Annotated[float, Field(gt=0, lt=1)] = 0.05   # s
    sparsity_weight: NonNegativeFloat = Field(
        1.0, description="the weight of the sparsity penalty; beta in Ng 2011")
    sparse_layers: Annotated[list[Literal["code"] | NonNegativeInt], Field(min_length=1)] = ["code"]
    renamed = {"beta": "sparsity_weight"}

    @model_validator(mode="after")
    def _layers_exist(self):
        layers = self.sparse_layers
        if len(set(layers)) != len(layers):
            raise ValueError(f"sparse_layers: entries must be distinct, got {layers}")
        hidden = [i for i in layers if i != "code"]
        if hidden and self.backbone != "mlp":
            raise ValueError(f"sparse_layers: hidden-layer indices need the mlp backbone's "
                             f"tanh units; {self.backbone!r} allows only ['code']")
        n = len(self.hidden if self.hidden is not None else BACKBONES[self.backbone][2])
        if any(i >= n for i in hidden):
            raise ValueError(f"sparse_layers: the encoder has {n} hidden layer(s), valid "
                             f"indices 0..{n - 1} and 'code'; got {layers}")
        return self


class SparseAE(AE):
    Config = SparseAEConfig

    def layer_activations(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Hidden tanh activations mapped to (0, 1), one (B, width) per layer, and the code."""
        hidden, h = [], x
        for module in self.encoder:
            h = module(h)
            if isinstance(module, nn.Tanh):
                hidden.append((1 + h) / 2)
        return hidden, self.activation(h)                             # code: (B, D)

    def loss(self, x, step):
        hidden, code = self.layer_activations(x)
        recon = self.recon(code, x)                                   # (B,)
        layers = [code if i == "code" else hidden[i] for i in self.cfg.sparse_layers]
        sparsity = sum(sparsity_penalty(a, self.cfg.sparsity_target) for a in layers)
        return LossTerms(recon.mean() + self.cfg.sparsity_weight * sparsity,
                         {"recon": recon.mean(), "sparsity_kl": sparsity})


MODEL = SparseAE
