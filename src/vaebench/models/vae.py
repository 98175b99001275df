"""Variational autoencoder (seed 000_369e559e02840038.txt; seed 001, "VAE").

q_phi(z|x) = N(mu_phi(x), diag(sigma_phi(x)^2)), p(z) = N(0, I), p_theta(x|z)
from the likelihood. The loss is the negative ELBO

    L(theta, phi) = -E_q[log p_theta(x|z)] + KL(q_phi(z|x) || p(z)),

with the expectation estimated by one reparameterised sample
z = mu + sigma * eps, eps ~ N(0, I) (the reparameterisation trick), and the KL
in closed form (torch.distributions' Gaussian KL, i.e.
1/2 sum_k [sigma_k^2 + mu_k^2 - 1 - log sigma_k^2]).

``prior`` picks p(z) from :mod:`vaebench.models.priors` (standard N(0, I) or a
learned r_lambda, seed 003_8d21b29d10b8777d.txt). Where torch.distributions has
no closed-form KL(q || p) (mixture priors), the KL is estimated by Monte Carlo
from the same reparameterised samples: log q(z|x) - log p(z).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import PositiveInt
from torch.distributions import kl_divergence

from vaebench.models.base import LossTerms, Model, ModelConfig, diagonal_gaussian
from vaebench.models.priors import PRIORS


class VAEConfig(ModelConfig):
    family: Literal["vae"] = "vae"
    prior: Literal["standard", "gaussian", "mog", "vamp"] = "standard"   # keys of PRIORS
    prior_components: PositiveInt = 10   # mog: mixture components; vamp: pseudo-inputs


class VAE(Model):
    Config = VAEConfig
    probabilistic = True
    enc_out_factor = 2          # mean and log-variance

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.prior_net = PRIORS[cfg.prior](cfg, self.image_shape)

    def encode(self, x):
        return diagonal_gaussian(self.encoder(x))

    def prior(self):
        return self.prior_net(self.encode)

    def kl(self, q, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example: closed form where torch.distributions has one,
        else the Monte Carlo estimate log q(z|x) - log p(z) at the samples z (..., B, D)."""
        prior = self.prior()
        try:
            return kl_divergence(q, prior)                       # (B,)
        except NotImplementedError:
            return q.log_prob(z) - prior.log_prob(z)             # (..., B)

    def kl_weight_at(self, step: int) -> float:
        """Weight of the KL term in the training loss (1: the ELBO)."""
        return 1.0

    def loss(self, x, step):
        q = self.encode(x)
        z = q.rsample()                                  # (B, D) reparameterised
        recon = -self.decode(z).log_prob(x)              # (B,)
        kl = self.kl(q, z)                               # (B,) closed form, else MC
        loss = (recon + self.kl_weight_at(step) * kl).mean()
        return LossTerms(loss, {"recon": recon.mean(), "kl": kl.mean(),
                                "elbo": -(recon + kl).mean()})
