"""CIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018, "Tighter Variational
Bounds are Not Necessarily Better", arXiv:1802.04537).

The IWAE's model and encoder (models/iwae.py); on K samples the objective is
beta * ELBO + (1 - beta) * VLB^(K), with the ELBO the mean of the K single-sample log
weights (beta is ``elbo_weight``; 1: the ELBO, 0: VLB^(K)).

Logged, beside the IWAE's single-sample ``elbo``/``recon``/``kl``: ``vlb``, the value of
the bound the loss is the negative of.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from vaebench.models.iwae import IWAE, IWAEConfig, iw_bound


class CIWAEConfig(IWAEConfig):
    family: Literal["ciwae"] = "ciwae"
    elbo_weight: float = Field(0.5, ge=0.0, le=1.0)   # the paper's beta on the ELBO


class CIWAE(IWAE):
    Config = CIWAEConfig

    def objective(self, log_w):
        beta = self.cfg.elbo_weight
        return beta * log_w.mean(0) + (1.0 - beta) * iw_bound(log_w)


MODEL = CIWAE
