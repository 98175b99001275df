"""Variational autoencoder (seed 000_369e559e02840038.txt; seed 001, "VAE").

q_phi(z|x) = N(mu_phi(x), diag(sigma_phi(x)^2)), p(z) = N(0, I), p_theta(x|z)
from the likelihood. The loss is the negative ELBO

    L(theta, phi) = -E_q[log p_theta(x|z)] + KL(q_phi(z|x) || p(z)),

with the expectation estimated by ``n_samples`` (default one) reparameterised
samples z = mu + sigma * eps, eps ~ N(0, I) (the reparameterisation trick), and the KL
in closed form (torch.distributions' Gaussian KL, i.e.
1/2 sum_k [sigma_k^2 + mu_k^2 - 1 - log sigma_k^2]).

The estimator of grad_phi E_q[log p(x|z)] (``gradient``, ``n_samples``,
``baseline``) and the theta/phi update schedule (``optimisation``) are options
of the family; see models/variational.py and models/estimators.py.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch.distributions import Independent, Normal, kl_divergence

from vaebench.models.base import LossTerms, Model, ModelConfig, diagonal_gaussian
from vaebench.models.estimators import ESTIMATORS, estimator_variances
from vaebench.models.variational import SCHEDULES, VariationalOptions


class VAEConfig(ModelConfig, VariationalOptions):
    family: Literal["vae"] = "vae"


class VAE(Model):
    Config = VAEConfig
    probabilistic = True
    enc_out_factor = 2          # mean and log-variance

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.register_buffer("_zeros", torch.zeros(cfg.latent_dim))

    def encode(self, x):
        return diagonal_gaussian(self.encoder(x))

    def prior(self):
        return Independent(Normal(self._zeros, torch.ones_like(self._zeros)), 1)

    def kl_weight_at(self, step: int) -> float:
        """Weight of the KL term in the training loss (1: the ELBO)."""
        return 1.0

    def expected_log_lik(self, q, x, gradient=None, baseline=None):
        """Monte Carlo E_q[log p(x|z)] per example (B,); grad_phi by the chosen estimator."""
        return ESTIMATORS[gradient or self.cfg.gradient](
            q, lambda z: self.decode(z).log_prob(x), self.cfg.n_samples,
            baseline or self.cfg.baseline)

    def loss(self, x, step):
        return self.elbo_loss(self.encode(x), x, step)

    def elbo_loss(self, q, x, step):
        """Negative ELBO of x under a given q(z|x) (amortised, or per data point)."""
        recon = -self.expected_log_lik(q, x)             # (B,)
        kl = kl_divergence(q, self.prior())              # (B,) closed form
        loss = (recon + self.kl_weight_at(step) * kl).mean()
        return LossTerms(loss, {"recon": recon.mean(), "kl": kl.mean(),
                                "elbo": -(recon + kl).mean()})

    def optim_groups(self):
        return SCHEDULES[self.cfg.optimisation].groups(self)

    def groups_to_step(self, step):
        return SCHEDULES[self.cfg.optimisation].to_step(step)

    def diagnostics(self, x):
        return estimator_variances(self, x, self.cfg.grad_var_repeats)
