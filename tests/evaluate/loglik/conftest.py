"""Fixtures of the log-likelihood tests: a linear-Gaussian model with an exact log p(x).

p(z) = N(0, I_d), p(x|z) = N(W z + mu, sigma^2 I), so p(x) = N(mu, W W^T + sigma^2 I)
(probabilistic PCA, Tipping & Bishop 1999). The exact posterior is
N(M^-1 W^T (x - mu) / sigma^2, M^-1) with M = I + W^T W / sigma^2. The encoder
is a deliberately imperfect amortised q(z|x): the posterior mean map scaled by
``mean_scale`` and the diagonal of the posterior covariance scaled by
``var_scale``, so L_K is strictly below log p(x) and tightens with K.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

from vaebench.models.base import Model
from vaebench.models.capabilities import ExactLikelihood


class GaussianLikelihood:
    """p(x|z) = N(loc, sigma^2 I) over whole images (event shape (C, H, W))."""

    n_maps = 1

    def __init__(self, sigma: float):
        self.sigma = sigma

    def __call__(self, loc):
        return Independent(Normal(loc, torch.full_like(loc, self.sigma)), 3)


class LinearGaussian(ExactLikelihood, Model):

    def __init__(self, image_shape=(1, 4, 4), latent_dim=3, sigma=0.3, mean_scale=1.05,
                 var_scale=1.5, seed=0):
        nn.Module.__init__(self)
        self.image_shape = tuple(image_shape)
        g = torch.Generator().manual_seed(seed)
        n_x = math.prod(image_shape)
        self.W = nn.Parameter(torch.randn(n_x, latent_dim, generator=g))
        self.mu = nn.Parameter(0.5 * torch.randn(n_x, generator=g))
        self.sigma = sigma
        self.likelihood = GaussianLikelihood(sigma)
        self.set_encoder(mean_scale, var_scale)

    def posterior(self):
        """(A, Sigma): exact posterior mean A (x - mu) and covariance Sigma."""
        W = self.W.detach()
        M = torch.eye(W.shape[1]) + W.T @ W / self.sigma ** 2
        cov = torch.linalg.inv(M)
        return cov @ W.T / self.sigma ** 2, cov

    def set_encoder(self, mean_scale: float, var_scale: float) -> None:
        A, cov = self.posterior()
        self.register_buffer("A", mean_scale * A)
        self.register_buffer("q_std", (var_scale * cov.diagonal()).sqrt())

    def encode(self, x):
        loc = (x.flatten(1) - self.mu) @ self.A.T                      # (B, d)
        return Independent(Normal(loc, self.q_std.expand_as(loc)), 1)

    def decode(self, z):
        loc = (z @ self.W.T + self.mu).view(*z.shape[:-1], *self.image_shape)
        return self.likelihood(loc)

    def prior(self):
        d = self.W.shape[1]
        return Independent(Normal(torch.zeros(d), torch.ones(d)), 1)

    def exact_log_prob(self, x):
        cov = self.W @ self.W.T + self.sigma ** 2 * torch.eye(len(self.mu))
        return MultivariateNormal(self.mu, cov).log_prob(x.flatten(1))

    @torch.no_grad()
    def sample_data(self, n: int, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.W.shape[1], generator=g)
        x = z @ self.W.T + self.mu + self.sigma * torch.randn(n, len(self.mu), generator=g)
        return x.view(n, *self.image_shape)


@pytest.fixture(scope="session")
def linear_gaussian() -> type[LinearGaussian]:
    """The class, so tests build instances with their own seeds and encoder errors."""
    return LinearGaussian
