"""MIWAE, CIWAE and PIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018,
"Tighter Variational Bounds are Not Necessarily Better", arXiv:1802.04537).

The IWAE's model and encoder (models/iwae.py) with log weights
log w = log p(x|z) + log p(z) - log q(z|x) of reparameterised z ~ q(z|x). A tighter
bound helps the generative network but lowers the signal-to-noise ratio of the
encoder's gradient; the three variants trade the two:

* MIWAE(M, K) -- (M: ``n_bounds``, K: ``iw_samples``) the mean of M independent K-sample
  bounds on M*K samples,
      (1/M) sum_m [ logsumexp_k log w_{m,k} - log K ].
  M = 1 is VLB^(K) of the IWAE; K = 1 the mean of M single-sample ELBOs. In
  expectation ELBO <= MIWAE(M, K) <= VLB^(M K).
* CIWAE(beta) -- on K samples, beta * ELBO + (1 - beta) * VLB^(K), with the ELBO the
  mean of the K single-sample log weights (beta is ``elbo_weight``; 1: the ELBO,
  0: VLB^(K)).
* PIWAE(M, K) -- partitioned objectives on the same M*K samples: the generative
  network (decoder, and a learned prior) follows VLB^(M K), the inference network
  (encoder) MIWAE(M, K). The two optimiser groups take their gradients from their own
  objectives through ``LossTerms.group_losses``.

Logged, beside the IWAE's single-sample ``elbo``/``recon``/``kl``: ``vlb``, the value of
the bound the loss is the negative of (PIWAE: the decoder's VLB^(M K), and the
encoder's MIWAE as ``vlb_encoder``).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt

from vaebench.models.base import LossTerms
from vaebench.models.iwae import IWAE, IWAEConfig, iw_bound
from vaebench.models.variational import Alternating


def miwae_bound(log_w: torch.Tensor, m: int) -> torch.Tensor:
    """MIWAE(M, K) per example from log weights (M*K, B): rows m*K .. m*K + K - 1 form
    the m-th K-sample bound; the mean of the M bounds."""
    mk = log_w.shape[0]
    if mk % m:
        raise ValueError(f"miwae_bound: {mk} log weights do not split into m = {m} groups")
    return iw_bound(log_w.reshape(m, mk // m, *log_w.shape[1:]).transpose(0, 1)).mean(0)


class MIWAEConfig(IWAEConfig):
    family: Literal["miwae"] = "miwae"
    n_bounds: PositiveInt = Field(   # each on iw_samples samples
        8, description="the independent K-sample bounds averaged; M in Rainforth et al. 2018")
    renamed = {**IWAEConfig.renamed, "m": "n_bounds"}


class MIWAE(IWAE):
    Config = MIWAEConfig

    @property
    def n_weights(self) -> int:
        return self.cfg.n_bounds * self.cfg.iw_samples

    def objective(self, log_w):
        return miwae_bound(log_w, self.cfg.n_bounds)


class CIWAEConfig(IWAEConfig):
    family: Literal["ciwae"] = "ciwae"
    elbo_weight: float = Field(0.5, ge=0.0, le=1.0)   # the paper's beta on the ELBO


class CIWAE(IWAE):
    Config = CIWAEConfig

    def objective(self, log_w):
        beta = self.cfg.elbo_weight
        return beta * log_w.mean(0) + (1.0 - beta) * iw_bound(log_w)


class PIWAEConfig(MIWAEConfig):
    family: Literal["piwae"] = "piwae"
    optimisation: Literal["joint"] = "joint"   # the groups are split by objective, not by step


class PIWAE(MIWAE):
    Config = PIWAEConfig

    def optim_groups(self):
        return Alternating.groups(self)        # theta: all but the encoder; phi: the encoder

    def groups_to_step(self, step):
        return ["theta", "phi"]

    def loss(self, x, step):
        log_px_z, log_w, trained = self.weights(x)
        theta = -iw_bound(trained).mean()      # generative network: VLB^(M K)
        phi = -self.objective(trained).mean()  # inference network: MIWAE(M, K)
        terms = {"vlb": iw_bound(log_w).mean(), "vlb_encoder": self.objective(log_w).mean(),
                 **self.elbo_terms(log_px_z, log_w)}
        return LossTerms(theta, terms, group_losses={"theta": theta, "phi": phi})
