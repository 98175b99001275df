"""AnnealedVAE, controlled capacity increase (Burgess et al. 2018, "Understanding
disentangling in beta-VAE", arXiv:1804.03599).

    L = -E_q[log p(x|z)] + gamma * | KL(q(z|x) || p(z)) - C(step) |,
    C(step) = c_max * min(1, step / c_steps),

with the KL the minibatch mean (as disentanglement_lib's ``annealed_vae``), so the
encoder may carry about C nats and the capacity grows linearly from 0 to ``c_max``
over ``c_steps`` optimiser steps, then holds. The paper's dSprites run: gamma = 1000,
C raised to 25 nats over 100,000 iterations (disentanglement_lib sweeps c_max in
5..100 at gamma = 1000). The reconstruction term keeps the VAE's estimator; a KL
warm-up multiplies the capacity term. The logged ``elbo`` is the true ELBO;
``capacity`` is C(step).
"""
from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt

from vaebench.models.base import LossTerms
from vaebench.models.vae import VAE, VAEConfig


class AnnealedVAEConfig(VAEConfig):
    family: Literal["annealed_vae"] = "annealed_vae"
    gamma: PositiveFloat = 1000.0
    c_max: NonNegativeFloat = 25.0     # nats
    c_steps: PositiveInt = 100_000     # steps over which C rises from 0 to c_max


class AnnealedVAE(VAE):
    Config = AnnealedVAEConfig

    def capacity(self, step: int) -> float:
        """C(step) = c_max * min(1, step / c_steps)."""
        return self.cfg.c_max * min(1.0, step / self.cfg.c_steps)

    def loss(self, x, step):
        q = self.encode(x)
        recon = -self.expected_log_lik(q, x)                    # (B,)
        kl = self.kl(q)                                         # (B,)
        c = self.capacity(step)
        loss = recon.mean() + self.kl_anneal * self.cfg.gamma * (kl.mean() - c).abs()
        return LossTerms(loss, {"recon": recon.mean(), "kl": kl.mean(),
                                "elbo": -(recon + kl).mean(), "capacity": kl.new_tensor(c)})


MODEL = AnnealedVAE
