"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted
Autoencoders", arXiv:1509.00519).

The VAE's model and encoder, trained on the K-sample variational lower bound

    VLB^(K)(x) = E_{z_1..z_K ~ q(z|x)} [ log (1/K) sum_k p(x, z_k) / q(z_k|x) ],

estimated with K (``iw_samples``) reparameterised samples per example and ``torch.logsumexp``
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
from pydantic import Field, PositiveInt

from vaebench.models.base import LossTerms
from vaebench.models.vae import VAE, VAEConfig
from vaebench.models.variational import MC_SAMPLES


class IWAEConfig(VAEConfig):
    family: Literal["iwae"] = "iwae"
    iw_samples: PositiveInt = Field(   # 1: the VAE's ELBO
        5, description="the importance samples per example; K in Burda et al. 2016")
    gradient: Literal["reparam"] = "reparam"   # the bound is differentiated pathwise
    mc_samples: Literal[1] = Field(1, description=f"{MC_SAMPLES}; 1 here, the importance "
                                               f"samples per example are iw_samples")
    renamed = {**VAEConfig.renamed, "k": "iw_samples"}


def iw_bound(log_w: torch.Tensor) -> torch.Tensor:
    """VLB^(K) per example from log weights (K, ...): logsumexp_k log w_k - log K."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


class IWAE(VAE):
    Config = IWAEConfig

    @property
    def n_weights(self) -> int:
        """Importance samples drawn per example."""
        return self.cfg.iw_samples

    def log_weights(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x|z), log p(z) - log q(z|x)) for k reparameterised samples z_k ~ q(z|x),
        each (K, B); log w = their sum."""
        q = self.encode(x)
        z = q.rsample((k,))                                 # (K, B, D)
        log_px_z = self.decode(z).log_prob(x)               # (K, B)
        return log_px_z, self.prior().log_prob(z) - q.log_prob(z)

    def bound(self, log_w: torch.Tensor) -> torch.Tensor:
        """VLB^(K) per example from log weights (K, B)."""
        return iw_bound(log_w)

    def objective(self, log_w: torch.Tensor) -> torch.Tensor:
        """The bound trained, per example (B,), from the n_weights log weights (variants
        of the family override it)."""
        return self.bound(log_w)

    def weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log p(x|z), log w, the log weights to train on), each (n_weights, B). During a
        KL warm-up the trained weights temper the log-ratio term; logged: the true ones."""
        log_px_z, log_ratio = self.log_weights(x, self.n_weights)
        log_w = log_px_z + log_ratio
        trained = log_w if self.kl_anneal == 1.0 else log_px_z + self.kl_anneal * log_ratio
        return log_px_z, log_w, trained

    @staticmethod
    def elbo_terms(log_px_z: torch.Tensor, log_w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Single-sample ELBO terms averaged over the samples (comparable with the VAE's)."""
        elbo, recon = log_w.mean(0), -log_px_z.mean(0)      # (B,)
        return {"elbo": elbo.mean(), "recon": recon.mean(), "kl": (-recon - elbo).mean()}

    def loss(self, x, step):
        log_px_z, log_w, trained = self.weights(x)
        vlb = self.objective(log_w)                         # (B,)
        loss = -(vlb if trained is log_w else self.objective(trained)).mean()
        return LossTerms(loss, {"vlb": vlb.mean(), **self.elbo_terms(log_px_z, log_w)})


MODEL = IWAE
