"""WAE-MMD (Tolstikhin et al. 2018, "Wasserstein Auto-Encoders", arXiv:1711.01558).

An autoencoder whose codes are pushed, as a whole, towards the prior p(z) = N(0, I):

    L = E_x[-log p(x | z = g_phi(x))] + lambda * MMD^2(q(z), p(z)),

lambda = ``mmd_weight``, q(z) the aggregate of the codes, MMD^2 the unbiased U-statistic
between the minibatch's codes and as many draws of p(z) (``models/mmd.py``;
inverse-multiquadratic kernel with C = 2 d sigma^2 by default, as in the paper). The
reconstruction cost is the likelihood's negative log-density, as every autoencoder here
uses, in place of the paper's squared error.

The encoder is deterministic (a point mass, as in the paper's experiments): WAE is the
plain autoencoder of ``ae.py`` plus a regulariser on its codes, with a linear code
(bounded sigmoid/tanh codes could not match N(0, I)). Sampling, too, is the
autoencoders': the ex-post Gaussian mixture fitted to the training codes after training
(``AE.prior``), not N(0, I) itself. Where the regulariser succeeded the two agree; where it
did not, the mixture still covers the codes the decoder was trained on (Ghosh et al.
2020, arXiv:1903.12436, fit it to every model they compare, WAE included), and every
deterministic autoencoder of the suite samples the same way.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat

from vaebench.models.ae import AE, AEConfig
from vaebench.models.base import LossTerms
from vaebench.models.mmd import MMDOptions, mmd_to_standard_normal


class WAEConfig(AEConfig, MMDOptions):
    family: Literal["wae"] = "wae"
    code_activation: Literal["linear"] = "linear"
    mmd_weight: NonNegativeFloat = Field(
        10.0, description="the weight of the MMD^2 term; lambda in Tolstikhin et al. 2018")
    renamed = {"lam": "mmd_weight"}


class WAE(AE):
    Config = WAEConfig

    def loss(self, x, step):
        z = self.code(x)
        recon = self.recon(z, x).mean()
        mmd = mmd_to_standard_normal(z, self.cfg.kernel, self.cfg.kernel_sigma)
        return LossTerms(recon + self.cfg.mmd_weight * mmd, {"recon": recon, "mmd": mmd})


MODEL = WAE
