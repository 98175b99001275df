"""beta-VAE (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a
Constrained Variational Framework", ICLR).

The VAE objective with the KL term weighted by beta (``kl_weight``):
-E_q[log p(x|z)] + beta * KL(q(z|x) || p(z)). beta > 1 pressures the posterior
towards the factorised prior (disentanglement), at the cost of reconstruction.
The logged ``elbo`` stays the true ELBO (beta = 1) so variants compare.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat

from vaebench.models.vae import VAE, VAEConfig


class BetaVAEConfig(VAEConfig):
    family: Literal["beta_vae"] = "beta_vae"
    kl_weight: NonNegativeFloat = Field(
        4.0, description="the weight of the KL term; beta in Higgins et al. 2017")
    renamed = {**VAEConfig.renamed, "beta": "kl_weight"}


class BetaVAE(VAE):
    Config = BetaVAEConfig

    def kl_weight_at(self, step):
        return self.cfg.kl_weight * self.kl_anneal


MODEL = BetaVAE
