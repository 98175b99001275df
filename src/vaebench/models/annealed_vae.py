"""AnnealedVAE, controlled capacity increase (Burgess et al. 2018, "Understanding
disentangling in beta-VAE", arXiv:1804.03599).

    L = -E_q[log p(x|z)] + gamma * | KL(q(z|x) || p(z)) - C(step) |,
    C(step) = C_max * min(1, step / c_steps),

with gamma = ``capacity_weight``, C_max = ``capacity_max`` and the KL the minibatch mean
(as disentanglement_lib's ``annealed_vae``), so the encoder may carry about C nats and
the capacity grows linearly from 0 to C_max over ``c_steps`` optimiser steps, then
holds. The paper's dSprites run: gamma = 1000, C raised to 25 nats over 100,000
iterations (disentanglement_lib sweeps C_max in 5..100 at gamma = 1000). The
reconstruction term keeps the VAE's estimator; a KL warm-up multiplies the capacity
term. The logged ``elbo`` is the true ELBO; ``capacity`` is C(step).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from vaebench.models.base import LossTerms
from vaebench.models.vae import VAE, VAEConfig


class AnnealedVAEConfig(VAEConfig):
    family: Literal["annealed_vae"] = "annealed_vae"
    capacity_weight: PositiveFloat = Field(
        1000.0, description="the weight of |KL - C|; gamma in Burgess et al. 2018")
    capacity_max: NonNegativeFloat = Field(
        25.0, description="the capacity C reached after c_steps, in nats; "
                          "C_max in Burgess et al. 2018")
    c_steps: PositiveInt = 100_000     # steps over which C rises from 0 to capacity_max
    renamed = {**VAEConfig.renamed, "gamma": "capacity_weight", "c_max": "capacity_max"}


class AnnealedVAE(VAE):
    Config = AnnealedVAEConfig

    def capacity(self, step: int) -> float:
        """C(step) = capacity_max * min(1, step / c_steps)."""
        return self.cfg.capacity_max * min(1.0, step / self.cfg.c_steps)

    def loss(self, x, step):
        q = self.encode(x)
        recon = -self.expected_log_lik(q, x)                    # (B,)
        kl = self.kl(q)                                         # (B,)
        c = self.capacity(step)
        loss = recon.mean() + self.kl_anneal * self.cfg.capacity_weight * (kl.mean() - c).abs()
        return LossTerms(loss, {"recon": recon.mean(), "kl": kl.mean(),
                                "elbo": -(recon + kl).mean(), "capacity": kl.new_tensor(c)})


MODEL = AnnealedVAE
