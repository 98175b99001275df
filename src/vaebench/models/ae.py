"""Plain autoencoder (seed 001_ac8decc5d88a2813.txt, "Autoencoder").

A deterministic encoder g_phi and decoder f_theta trained to minimise the
reconstruction loss -log p(x | z = g_phi(x)): cross-entropy for the Bernoulli
likelihood (binary images). q(z|x) is a point mass on the code.
"""
from __future__ import annotations

from typing import Literal

from vaebench.models.base import LossTerms, Model, ModelConfig, PointMass


class AEConfig(ModelConfig):
    family: Literal["ae"] = "ae"


class AE(Model):
    Config = AEConfig

    def encode(self, x):
        return PointMass(self.encoder(x))

    def loss(self, x, step):
        z = self.encoder(x)                              # (B, D)
        recon = -self.decode(z).log_prob(x)              # (B,) nats per image
        return LossTerms(recon.mean(), {"recon": recon.mean()})
