"""InfoVAE in its MMD form (Zhao, Song & Ermon 2019, "InfoVAE: Balancing Learning and
Inference in Variational Autoencoders", arXiv:1706.02262).

The ELBO's reconstruction term, the KL weighted (1 - alpha), plus a divergence between
the aggregate posterior q(z) = E_x q(z|x) and the prior weighted (alpha + lambda - 1):

    L = E_x[-E_q log p(x|z)] + (1 - alpha) E_x KL(q(z|x) || p(z))
        + (alpha + lambda - 1) MMD^2(q(z), p(z)),

with the MMD^2 U-statistic of ``models/mmd.py`` between one reparameterised draw
z_i ~ q(z|x_i) per example of the minibatch and as many draws of p(z) = N(0, I).
alpha = 1 drops the KL term altogether; alpha = 0, lambda = 1 is the VAE. The config
names them ``kl_reduction`` (alpha: the KL is weighted 1 - alpha) and ``mmd_weight``
(lambda).

The weights must keep both terms penalties: alpha <= 1 and alpha + lambda >= 1 (a
negative weight would reward the divergence). The reconstruction and KL terms are the
VAE's (``elbo_loss``, with its estimator options); a KL warm-up tempers the KL term
only. The encoder is the VAE's Gaussian, so q has a density and log-likelihood applies.
The logged ``elbo`` is the true ELBO.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, model_validator

from vaebench.models.base import LossTerms
from vaebench.models.mmd import MMDOptions, mmd_to_standard_normal
from vaebench.models.vae import VAE, VAEConfig


class InfoVAEConfig(VAEConfig, MMDOptions):
    family: Literal["info_vae"] = "info_vae"
    prior: Literal["standard"] = "standard"    # the MMD is taken to N(0, I)
    kl_reduction: float = Field(
        0.0, description="the KL term is weighted 1 - kl_reduction; alpha in Zhao et al. 2019")
    mmd_weight: PositiveFloat = Field(
        1000.0, description="lambda in Zhao et al. 2019: the MMD^2 term is weighted "
                            "kl_reduction + mmd_weight - 1")
    renamed = {**VAEConfig.renamed, "alpha": "kl_reduction", "lam": "mmd_weight"}

    @model_validator(mode="after")
    def _weights_are_penalties(self):
        a, lam = self.kl_reduction, self.mmd_weight
        if a > 1:
            raise ValueError(f"kl_reduction: the KL weight 1 - kl_reduction must be >= 0, "
                             f"i.e. kl_reduction <= 1; got {a}")
        if a + lam < 1:
            raise ValueError(f"mmd_weight: the MMD weight kl_reduction + mmd_weight - 1 must be "
                             f">= 0, i.e. mmd_weight >= {1 - a}; got {lam}")
        return self


class InfoVAE(VAE):
    Config = InfoVAEConfig

    def kl_weight_at(self, step):
        return (1 - self.cfg.kl_reduction) * self.kl_anneal

    def loss(self, x, step):
        cfg, q = self.cfg, self.encode(x)
        out = self.elbo_loss(q, x, step)   # recon + (1 - kl_reduction) KL, its samples first
        mmd = mmd_to_standard_normal(q.rsample(), cfg.kernel, cfg.kernel_sigma)
        weight = cfg.kl_reduction + cfg.mmd_weight - 1
        return LossTerms(out.loss + weight * mmd, {**out.terms, "mmd": mmd})


MODEL = InfoVAE
