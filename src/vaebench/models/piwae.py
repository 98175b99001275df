"""PIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018, "Tighter Variational
Bounds are Not Necessarily Better", arXiv:1802.04537).

Partitioned objectives on the same M*K samples of MIWAE (models/miwae.py): the
generative network (decoder, and a learned prior) follows VLB^(M K), the inference
network (encoder) MIWAE(M, K). The two optimiser groups take their gradients from their
own objectives through ``LossTerms.group_losses``.

Logged, beside the IWAE's single-sample ``elbo``/``recon``/``kl``: ``vlb``, the
decoder's VLB^(M K), and the encoder's MIWAE as ``vlb_encoder``.
"""
from __future__ import annotations

from typing import Literal

from vaebench.models.base import LossTerms
from vaebench.models.iwae import iw_bound
from vaebench.models.miwae import MIWAE, MIWAEConfig
from vaebench.models.variational import Alternating


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


MODEL = PIWAE
