"""Priors p(z) of the VAE-type families, learned ones included (``prior:`` in params).

A prior is an ``nn.Module`` built from the model config; calling it with the
model's ``encode`` returns the ``torch.distributions`` object p(z) over codes
of size D (event shape (D,)). Its parameters lambda are ordinary model
parameters, so they are trained with theta and phi on the same objective; as q
does not depend on lambda, grad_lambda ELBO = E_q[grad_lambda log r_lambda(z)].

- ``standard``: N(0, I).
- ``gaussian``: r_lambda(z) = N(m, diag(exp(2 s))), lambda = (m, s).
- ``mog``: sum_c pi_c N(m_c, diag(exp(2 s_c))), learned logits, means and log-scales.
- ``vamp``: the VampPrior (Tomczak & Welling 2018), (1/M) sum_m q_phi(z | u_m) with
  learned pseudo-inputs u_m passed through the model's own encoder.

``prior_components`` sets the number of mixture components (mog) or
pseudo-inputs (vamp). Mixtures have no closed-form KL to q(z|x); the VAE then
estimates the KL by Monte Carlo (see ``VAE.kl``).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal

Encode = Callable[[torch.Tensor], Distribution]


class StandardPrior(nn.Module):
    """p(z) = N(0, I)."""

    def __init__(self, cfg, image_shape):
        super().__init__()
        self.register_buffer("zeros", torch.zeros(cfg.latent_dim))

    def forward(self, encode: Encode) -> Distribution:
        return Independent(Normal(self.zeros, torch.ones_like(self.zeros)), 1)


class GaussianPrior(nn.Module):
    """r_lambda(z) = N(m, diag(exp(s))^2) with learned m, s, initialised at N(0, I)."""

    def __init__(self, cfg, image_shape):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(cfg.latent_dim))           # (D,)
        self.log_scale = nn.Parameter(torch.zeros(cfg.latent_dim))     # (D,)

    def forward(self, encode):
        return Independent(Normal(self.loc, self.log_scale.exp()), 1)


class MixturePrior(nn.Module):
    """sum_c softmax(w)_c N(m_c, diag(exp(s_c))^2), C = ``prior_components``.

    Means start at N(0, I) draws: equal means would receive equal gradients and
    the mixture would never break its symmetry.
    """

    def __init__(self, cfg, image_shape):
        super().__init__()
        c, d = cfg.prior_components, cfg.latent_dim
        self.logits = nn.Parameter(torch.zeros(c))                     # (C,)
        self.loc = nn.Parameter(torch.randn(c, d))                     # (C, D)
        self.log_scale = nn.Parameter(torch.zeros(c, d))               # (C, D)

    def forward(self, encode):
        components = Independent(Normal(self.loc, self.log_scale.exp()), 1)  # batch (C,)
        return MixtureSameFamily(Categorical(logits=self.logits), components)


class VampPrior(nn.Module):
    """p(z) = (1/M) sum_m q_phi(z | u_m), M = ``prior_components`` learned pseudo-inputs.

    The pseudo-inputs are images, kept in the data range [0, 1] by a sigmoid;
    gradients reach both them and the encoder. They start near-blank,
    u = sigmoid(-3 + 0.01 eps) ~ 0.05: from mid-grey random images
    (sigmoid(eps)) the quick-profile MNIST model fell into posterior collapse
    (KL = 0) at once and had not left it after 60 epochs.
    """

    def __init__(self, cfg, image_shape):
        super().__init__()
        raw = -3.0 + 0.01 * torch.randn(cfg.prior_components, *image_shape)   # (M, C, H, W)
        self.raw_inputs = nn.Parameter(raw)

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        return torch.sigmoid(self.raw_inputs)

    def forward(self, encode):
        components = encode(self.pseudo_inputs)                         # batch (M,), event (D,)
        m = components.batch_shape[0]
        uniform = Categorical(logits=torch.zeros(m, device=self.raw_inputs.device))
        return MixtureSameFamily(uniform, components)


PRIORS: dict[str, type[nn.Module]] = {
    "standard": StandardPrior,
    "gaussian": GaussianPrior,
    "mog": MixturePrior,
    "vamp": VampPrior,
}
