"""Denoising autoencoder (Vincent et al. 2008, "Extracting and Composing Robust
Features with Denoising Autoencoders", ICML).

Each training input is corrupted by a stochastic process x~ ~ M(x~ | x) and the
model is trained to recover the ORIGINAL input:

    L_DAE = -(1/n) sum_i log p_theta(x_i | z = g_phi(x~_i)),

the Bernoulli cross-entropy form of the squared error. The corruption is
one of :data:`vaebench.corruptions.CORRUPTIONS` (``masking``: a fraction ``level``
of the input dimensions set to 0, the original experiment; ``gaussian``: noise of
standard deviation ``level``, clipped; ``salt_pepper``: a fraction ``level`` set to
0 or 1), drawn from torch's global RNG, which the training loop seeds, so training
stays bit-reproducible. Codes for evaluation (``represent``) come from clean inputs.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import NonNegativeFloat, model_validator

from vaebench.corruptions import CORRUPTIONS
from vaebench.models.ae import AE, AEConfig
from vaebench.models.base import LossTerms

DIAGNOSTIC_SEED = 0   # fixed corruption of the test set in ``diagnostics``


class DAEConfig(AEConfig):
    family: Literal["dae"] = "dae"
    corruption: Literal[tuple(CORRUPTIONS)] = "masking"
    level: NonNegativeFloat = 0.25   # masking / salt_pepper: fraction in [0, 1]; gaussian: sigma

    @model_validator(mode="after")
    def _level_fits_corruption(self):
        try:   # the corruption itself knows its valid levels
            CORRUPTIONS[self.corruption](torch.zeros(1), self.level)
        except ValueError as err:
            raise ValueError(f"level: {err}") from None
        return self


class DAE(AE):
    Config = DAEConfig

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x~ ~ M(x~ | x), same shape as x."""
        return CORRUPTIONS[self.cfg.corruption](x, self.cfg.level, generator)

    def loss(self, x, step):
        x_tilde = self.corrupt(x)                      # (B, C, H, W) corrupted input
        recon = self.recon(self.code(x_tilde), x)      # target: the CLEAN x
        return LossTerms(recon.mean(), {"recon": recon.mean()})

    def diagnostics(self, x):
        """The shared diagnostics, plus the reconstruction error of the clean test inputs
        from their corruption at the training level (fixed seed)."""
        out = super().diagnostics(x)
        gen = torch.Generator(device=x.device).manual_seed(DIAGNOSTIC_SEED)
        with torch.no_grad():
            nats = torch.cat([self.recon(self.represent(self.corrupt(c, gen)), c)
                              for c in x.split(1000)])
        out["denoise_recon_nats"] = float(nats.mean())
        return out


MODEL = DAE
