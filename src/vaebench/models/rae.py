"""RAE with an L2 decoder regulariser, "RAE-L2" (Ghosh et al. 2020, "From Variational to
Deterministic Autoencoders", arXiv:1903.12436).

A deterministic autoencoder whose loss replaces the VAE's noise and KL by two explicit
regularisers:

    L = E_x[-log p(x | z = g_phi(x))] + beta * E_x[1/2 ||z||^2] + lambda * ||theta||^2,

beta = ``code_weight``, lambda = ``decoder_weight``, 1/2 ||z||^2 bounding the code space
(the part of the VAE's KL that acts on the means) and ||theta||^2 the squared L2 norm of
every decoder parameter, weights and biases (weight decay on the decoder, for a smooth
decoder). Both are taken per step on the minibatch mean, so lambda is relative to one
example's reconstruction. The reconstruction is the likelihood's negative log-density,
as for every autoencoder here (the paper: squared error).

Sampling is the paper's ex-post density estimation: the Gaussian mixture the plain
autoencoder (``ae.py``) fits to the training codes after training.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, NonNegativeFloat

from vaebench.models.ae import AE, AEConfig
from vaebench.models.base import LossTerms


class RAEConfig(AEConfig):
    family: Literal["rae"] = "rae"
    code_activation: Literal["linear"] = "linear"
    # 1: the weight the VAE's KL puts on 1/2 ||mu||^2
    code_weight: NonNegativeFloat = Field(
        1.0, description="the weight of 1/2 ||z||^2; beta in Ghosh et al. 2020")
    decoder_weight: NonNegativeFloat = Field(
        1e-3, description="the weight of the decoder's ||theta||^2; lambda in Ghosh et al. 2020")
    renamed = {"beta": "code_weight", "lam": "decoder_weight"}


class RAE(AE):
    Config = RAEConfig

    def decoder_sq_norm(self) -> torch.Tensor:
        """||theta||^2 over every decoder parameter."""
        return sum(p.pow(2).sum() for p in self.decoder.parameters())

    def loss(self, x, step):
        z = self.code(x)
        recon = self.recon(z, x).mean()
        code_sq = 0.5 * z.pow(2).sum(-1).mean()
        dec_sq = self.decoder_sq_norm()
        return LossTerms(recon + self.cfg.code_weight * code_sq + self.cfg.decoder_weight * dec_sq,
                         {"recon": recon, "code_sq_norm": code_sq, "decoder_sq_norm": dec_sq})


MODEL = RAE
