"""Linear VAE: the linear-Gaussian model of probabilistic PCA trained by the ELBO
(Tipping & Bishop 1999; the linear VAE of Lucas et al. 2019, "Don't Blame the ELBO! A
Linear VAE Perspective on Posterior Collapse", arXiv:1911.02469).

    p(z) = N(0, I),  p(x|z) = N(W z + mu, sigma^2 I),  q(z|x) = N(A x + a, diag(exp(B x + b)))

The MLP backbone without hidden layers is exactly this pair of linear maps, and
the likelihood ``gaussian_isotropic`` learns sigma^2. Unlike a deep VAE, the
marginal is known in closed form, p(x) = N(mu, W W^T + sigma^2 I), so
``exact_log_prob`` gives the yardstick every likelihood estimator is checked
against, and log p(x) - ELBO = KL(q(z|x) || p(z|x)) >= 0 is visible exactly.
Trained on intensities (no binarisation): the model is a density on R^D.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn
from torch.distributions import LowRankMultivariateNormal

from vaebench.models.capabilities import ExactLikelihood
from vaebench.models.vae import VAE, VAEConfig


def linear_gaussian_marginal(decoder: nn.Linear, variance: torch.Tensor,
                             dtype: torch.dtype = torch.float64) -> LowRankMultivariateNormal:
    """p(x) = N(mu, W W^T + sigma^2 I) over flattened images, W = decoder weight (D, d),
    mu = decoder bias (D,); computed in ``dtype`` (float64: D = 784 sums stay exact)."""
    w, mu = decoder.weight.to(dtype), decoder.bias.to(dtype)          # (D, d), (D,)
    return LowRankMultivariateNormal(mu, w, variance.to(dtype).expand_as(mu))


class LinearVAEConfig(VAEConfig):
    family: Literal["linear_vae"] = "linear_vae"
    backbone: Literal["mlp"] = "mlp"
    hidden: Annotated[list[PositiveInt], Field(max_length=0)] = []   # linear maps only
    likelihood: Literal["gaussian_isotropic"] = "gaussian_isotropic"
    binarize: Literal[False] = False
    prior: Literal["standard"] = "standard"     # the closed-form marginal needs N(0, I)


class LinearVAE(ExactLikelihood, VAE):
    Config = LinearVAEConfig

    @property
    def linear_decoder(self) -> nn.Linear:
        return self.decoder.net[-1]

    def marginal(self) -> LowRankMultivariateNormal:
        """p(x) of the model, over flattened images (D,)."""
        return linear_gaussian_marginal(self.linear_decoder, self.likelihood.variance)

    def exact_log_prob(self, x):
        """log N(x; mu, W W^T + sigma^2 I) per example, (B,)."""
        return self.marginal().log_prob(x.flatten(1).to(torch.float64)).to(x.dtype)

    def loss(self, x, step):
        """The VAE's negative ELBO; the exact log p(x) is logged beside it (``log_px``)."""
        out = super().loss(x, step)
        with torch.no_grad():
            out.terms["log_px"] = self.exact_log_prob(x).mean()
        return out


MODEL = LinearVAE
