"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted
Autoencoders", arXiv:1509.00519).

The VAE's model and encoder, trained on the K-sample variational lower bound

    VLB^(K)(x) = E_{z_1..z_K ~ q(z|x)} [ log (1/K) sum_k p(x, z_k) / q(z_k|x) ],

estimated with K reparameterised samples per example and ``torch.logsumexp``
over the log weights log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x).
VLB^(1) is the ELBO (with a Monte Carlo KL); VLB^(K) is non-decreasing in K and
tends to log p(x) as K grows or as q approaches the posterior. The logged
``elbo`` = mean_k log w_k, ``recon`` and ``kl`` (Monte Carlo, log q - log p) are
the single-sample ELBO terms averaged over the same K samples: unbiased
estimates of the VAE's terms, so the two families compare.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import PositiveInt

from vaebench.models.base import LossTerms
from vaebench.models.vae import VAE, VAEConfig


class IWAEConfig(VAEConfig):
    family: Literal["iwae"] = "iwae"
    k: PositiveInt = 5          # importance samples per example (1: the VAE's ELBO)
    gradient: Literal["reparam"] = "reparam"   # the bound is differentiated pathwise
    n_samples: Literal[1] = 1                  # the samples per example are ``k``


class IWAE(VAE):
    Config = IWAEConfig

    def log_weights(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x|z), log p(z) - log q(z|x)) for k reparameterised samples z_k ~ q(z|x),
        each (K, B); log w = their sum."""
        q = self.encode(x)
        z = q.rsample((k,))                                 # (K, B, D)
        log_px_z = self.decode(z).log_prob(x)               # (K, B)
        return log_px_z, self.prior().log_prob(z) - q.log_prob(z)

    def bound(self, log_w: torch.Tensor) -> torch.Tensor:
        """VLB^(K) per example from log weights (K, B): logsumexp_k log w_k - log K."""
        return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])   # (B,)

    def loss(self, x, step):
        log_px_z, log_ratio = self.log_weights(x, self.cfg.k)
        vlb = self.bound(log_px_z + log_ratio)              # (B,)
        # during a KL warm-up the trained bound tempers the log-ratio term; logged: the true one
        trained = vlb if self.kl_anneal == 1.0 else self.bound(log_px_z + self.kl_anneal * log_ratio)
        elbo = (log_px_z + log_ratio).mean(0)               # (B,)
        recon = -log_px_z.mean(0)                           # (B,)
        return LossTerms(-trained.mean(), {"vlb": vlb.mean(), "elbo": elbo.mean(),
                                           "recon": recon.mean(), "kl": (-recon - elbo).mean()})
