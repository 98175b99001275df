"""MIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018, "Tighter Variational
Bounds are Not Necessarily Better", arXiv:1802.04537).

The IWAE's model and encoder (models/iwae.py) with log weights
log w = log p(x|z) + log p(z) - log q(z|x) of reparameterised z ~ q(z|x). A tighter
bound helps the generative network but lowers the signal-to-noise ratio of the
encoder's gradient; MIWAE, CIWAE (models/ciwae.py) and PIWAE (models/piwae.py) trade
the two.

MIWAE(M, K) -- (M: ``n_bounds``, K: ``iw_samples``) the mean of M independent K-sample
bounds on M*K samples,
    (1/M) sum_m [ logsumexp_k log w_{m,k} - log K ].
M = 1 is VLB^(K) of the IWAE; K = 1 the mean of M single-sample ELBOs. In
expectation ELBO <= MIWAE(M, K) <= VLB^(M K).

Logged, beside the IWAE's single-sample ``elbo``/``recon``/``kl``: ``vlb``, the value of
the bound the loss is the negative of.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt

from vaebench.models.iwae import IWAE, IWAEConfig, iw_bound


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


MODEL = MIWAE
