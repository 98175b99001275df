"""k-sparse autoencoder (Makhzani & Frey 2014, "k-Sparse Autoencoders",
arXiv:1312.5663).

Linear code z = g_phi(x); only the k (``top_k``) largest units of each example are kept and
the rest set to 0, z' = sparsify(z). The decoder and the loss see z' only, so
the backward pass reaches the encoder through the k kept units alone. Codes for
evaluation and the ex-post mixture are the sparsified z' as well (codes drawn from
the mixture are near-sparse, not exactly k-sparse; they are decoded as drawn).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt, model_validator

from vaebench.models.ae import AE, AEConfig


def keep_top_k(z: torch.Tensor, k: int) -> torch.Tensor:
    """(B, D) -> (B, D): the k largest values of each row kept in place, the others 0."""
    values, index = z.topk(k, dim=-1)                                 # (B, k)
    return torch.zeros_like(z).scatter(-1, index, values)


class KSparseAEConfig(AEConfig):
    family: Literal["ksparse_ae"] = "ksparse_ae"
    code_activation: Literal["linear"] = "linear"
    top_k: PositiveInt | None = Field(   # None: a quarter of the code units (at least 1)
        None, description="the code units kept per example; k in Makhzani & Frey 2014")
    renamed = {"k": "top_k"}

    @model_validator(mode="after")
    def _k_fits_code(self):
        if self.top_k is not None and self.top_k > self.latent_dim:
            raise ValueError(f"top_k: must satisfy 1 <= top_k <= latent_dim = {self.latent_dim}, "
                             f"got {self.top_k}")
        return self

    @property
    def kept(self) -> int:
        return self.top_k if self.top_k is not None else max(1, self.latent_dim // 4)


class KSparseAE(AE):
    Config = KSparseAEConfig

    def code(self, x):
        return keep_top_k(self.encoder(x), self.cfg.kept)


MODEL = KSparseAE
