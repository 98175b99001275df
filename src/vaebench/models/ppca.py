"""Probabilistic PCA (Tipping & Bishop 1999, "Probabilistic Principal Component
Analysis", JRSS B 61(3)), fitted in closed form: the linear-Gaussian yardstick for
every likelihood estimate.

    p(z) = N(0, I),  p(x|z) = N(W z + mu, sigma^2 I),  p(x) = N(mu, W W^T + sigma^2 I)

No gradient training (``ClosedForm``): ``after_fit`` fits scikit-learn's
PCA(n_components = latent_dim) on the training intensities and sets the maximum
likelihood solution W = V^T diag(sqrt(lambda - sigma^2)) (V the principal axes,
lambda their variances, sigma^2 = ``noise_variance_`` the mean discarded
variance; scikit-learn uses the N - 1 sample covariance, as its
``score_samples`` does). Because V has orthonormal rows, M = W^T W + sigma^2 I =
diag(lambda) is diagonal, and the exact posterior

    p(z|x) = N(M^-1 W^T (x - mu), sigma^2 M^-1)

is a diagonal Gaussian, returned by ``encode``. With q equal to the posterior the
ELBO is tight: log p(x, z) - log q(z|x) = log p(x) for every z.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch.distributions import Independent, Normal

from vaebench.models.base import LossTerms
from vaebench.models.capabilities import ClosedForm
from vaebench.models.linear_vae import LinearVAE, LinearVAEConfig

if TYPE_CHECKING:
    from sklearn.decomposition import PCA


class PPCAConfig(LinearVAEConfig):
    family: Literal["ppca"] = "ppca"
    likelihood: Literal["gaussian"] = "gaussian"   # sigma is set by the fit
    optimisation: Literal["joint"] = "joint"       # no gradient steps at all
    grad_var_repeats: Literal[0] = 0               # no encoder training to diagnose


class PPCA(ClosedForm, LinearVAE):
    Config = PPCAConfig
    enc_out_factor = 1          # the posterior mean; its scale does not depend on x

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.register_buffer("posterior_scale", torch.ones(cfg.latent_dim))   # (d,)

    def encode(self, x):
        loc = self.encoder(x)                                              # (B, d)
        return Independent(Normal(loc, self.posterior_scale.expand_as(loc)), 1)

    @torch.no_grad()
    def set_from_pca(self, pca: PCA) -> None:
        """Copy a fitted scikit-learn PCA into W, mu, sigma^2 and the posterior map."""
        f64 = dict(dtype=torch.float64)
        v = torch.as_tensor(pca.components_, **f64)                        # (d, D)
        lam = torch.as_tensor(pca.explained_variance_, **f64)              # (d,)
        mu = torch.as_tensor(pca.mean_, **f64)                             # (D,)
        s2 = torch.tensor(float(pca.noise_variance_), **f64)
        excess = (lam - s2).clamp_min(0)                                   # (d,)
        w = v.T * excess.sqrt()                                            # (D, d)
        m = excess + s2                                                    # diag of W^T W + s2 I
        post_w = w.T / m[:, None]                                          # (d, D) = M^-1 W^T
        dec, enc = self.linear_decoder, self.encoder[-1]
        dec.weight.copy_(w)
        dec.bias.copy_(mu)
        enc.weight.copy_(post_w)
        enc.bias.copy_(-post_w @ mu)
        self.posterior_scale.copy_((s2 / m).sqrt())
        self.likelihood.sigma.copy_(s2.sqrt())

    def after_fit(self, data, binarize):
        idx = torch.arange(len(data.x_train), device=data.device)
        x = data.train_batch(idx, binarize).flatten(1).double().cpu().numpy()  # (N, D)
        from sklearn.decomposition import PCA   # lazy: see models/ae.py fit_expost
        self.set_from_pca(PCA(n_components=self.cfg.latent_dim, svd_solver="full").fit(x))

    def loss(self, x, step):
        """-log p(x), the maximum-likelihood objective; the ELBO terms are logged beside it."""
        terms = super().loss(x, step).terms
        log_px = self.exact_log_prob(x).mean()
        return LossTerms(-log_px, {**terms, "log_px": log_px})


MODEL = PPCA
