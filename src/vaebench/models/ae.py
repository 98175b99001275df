"""Plain autoencoder (Hinton & Salakhutdinov 2006, "Reducing the Dimensionality of Data
with Neural Networks", Science 313), and what every
deterministic autoencoder (dae, sparse_ae, ksparse_ae, cae) inherits from it.

A deterministic encoder g_phi and decoder f_theta trained to minimise the
reconstruction loss -log p(x | z = g_phi(x)): cross-entropy for the Bernoulli
likelihood (binary images). q(z|x) is a point mass on the code
z = a(g_phi(x)), ``a`` the code activation (linear, sigmoid or tanh).

Ex-post density. An autoencoder has no prior to sample from, so after training
(``after_fit``) a Gaussian mixture p(z) = sum_k pi_k N(z | mu_k, Sigma_k) (the ex-post
density estimation of Ghosh et al. 2020, "From Variational to Deterministic
Autoencoders", arXiv:1903.12436) is fitted by EM (scikit-learn) to the codes of
the training set. It is kept as buffers, so the checkpoint carries it, and is the
model's ``prior()``: ancestral sampling (k ~ Cat(pi), z ~ N(mu_k, Sigma_k)) then
decoding turns any autoencoder into a sampler.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from pydantic import PositiveFloat, PositiveInt
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from vaebench.models.base import LossTerms, Model, ModelConfig, PointMass
from vaebench.models.capabilities import LatentPrior, NotFitted
from vaebench.models.jacobian import jacobian_frobenius

if TYPE_CHECKING:
    from sklearn.mixture import GaussianMixture

# code activation a -> (a, a' written as a function of the output h = a(u))
CODE_ACTIVATIONS = {
    "linear": (lambda u: u, lambda h: torch.ones_like(h)),
    "sigmoid": (torch.sigmoid, lambda h: h * (1 - h)),
    "tanh": (torch.tanh, lambda h: 1 - h ** 2),
}

# A code unit u is "active" on x when |z_u(x)| > ACTIVE_THRESHOLD * max_v |z_v(x)|: a
# fraction of the example's largest code magnitude. Scale-free, so it means the same
# for linear codes (whose scale the decoder can absorb), sigmoid and tanh codes
# (inactive = near 0, the rest value of both), and k-sparse codes (at most k active).
ACTIVE_THRESHOLD = 0.1
JACOBIAN_EXAMPLES = 256   # diagnostics: the encoder Jacobian on the first 256 test inputs
_BATCH = 1000             # examples per forward pass when encoding a whole set


def active_fractions(codes: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> torch.Tensor:
    """Per example, the fraction of its active code units (see ACTIVE_THRESHOLD)."""
    mag = codes.abs()                                                  # (N, D)
    return (mag > threshold * mag.amax(-1, keepdim=True)).float().mean(-1)


def active_fraction(codes: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> float:
    """Mean over examples of the fraction of active code units (see ACTIVE_THRESHOLD)."""
    return float(active_fractions(codes, threshold).mean())


def _stderr(values: torch.Tensor) -> float:
    """Standard error of the mean over examples (the report's claims test with it)."""
    return float(values.double().std() / len(values) ** 0.5) if len(values) > 1 else float("nan")


class AEConfig(ModelConfig):
    family: Literal["ae"] = "ae"
    code_activation: Literal["linear", "sigmoid", "tanh"] = "linear"
    expost_components: PositiveInt = 10              # mixture components K
    expost_covariance: Literal["full", "tied", "diag", "spherical"] = "full"
    expost_reg_covar: PositiveFloat = 1e-4           # added to every covariance diagonal


class AE(LatentPrior, Model):
    Config = AEConfig

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.activation, self.activation_grad = CODE_ACTIVATIONS[cfg.code_activation]
        k, d = cfg.expost_components, cfg.latent_dim
        self.register_buffer("expost_fitted", torch.tensor(False))
        self.register_buffer("expost_weights", torch.full((k,), 1.0 / k))        # (K,)
        self.register_buffer("expost_means", torch.zeros(k, d))                  # (K, D)
        self.register_buffer("expost_scale_tril", torch.eye(d).repeat(k, 1, 1))  # (K, D, D)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, D): the deterministic code z = a(g_phi(x))."""
        return self.activation(self.encoder(x))

    def encode(self, x):
        return PointMass(self.code(x))

    def recon(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) per example (B,), nats per image."""
        return -self.decode(z).log_prob(x)

    def loss(self, x, step):
        recon = self.recon(self.code(x), x)
        return LossTerms(recon.mean(), {"recon": recon.mean()})

    @torch.no_grad()
    def before_fit(self, data, binarize):
        """Start the decoder at the pixel marginal: its output bias is set so that p(x|z)
        has the mean training image as its mean (Bernoulli: the logit of it).

        Without it, Adam's first steps reach the mean image by saturating the tanh
        units (a constant code, |z| ~ 4), where gradients vanish: at quick size the
        MLP autoencoder then stays at the marginal's ~208 nats for most of its epochs.
        The output layer is per pixel (mlp) or per channel (conv64: the mean over pixels).
        Likelihoods without a natural start (learned variance maps) are left alone.
        """
        n = len(data.x_train)                                          # (no float copy of the set)
        mean = data.x_train.sum(0, dtype=torch.float64).float() / (n * data.max_value)  # (C, H, W)
        bias = self.decoder.net[-1].bias
        if bias.numel() != self.likelihood.n_maps * mean.numel():
            mean = mean.mean((1, 2), keepdim=True)                     # (C, 1, 1) per channel
        target = self.likelihood.output_for_mean(mean)
        if target is not None:
            bias.copy_(target.reshape(bias.shape))

    # --- ex-post density ------------------------------------------------------------
    def prior(self):
        """The ex-post Gaussian mixture over codes, fitted by ``after_fit``."""
        if not bool(self.expost_fitted):
            raise NotFitted(f"{self.cfg.family}: the ex-post density over codes is fitted "
                            f"after training (after_fit); this model has not been trained")
        return MixtureSameFamily(Categorical(probs=self.expost_weights),
                                 MultivariateNormal(self.expost_means,
                                                    scale_tril=self.expost_scale_tril))

    @torch.no_grad()
    def after_fit(self, data, binarize):
        """Fit the ex-post mixture to the codes of the whole training set."""
        seed = int(torch.randint(2 ** 31 - 1, ()))   # from the seeded global RNG
        gen = torch.Generator(device=data.device).manual_seed(seed)
        was_training = self.training
        self.eval()
        idx = torch.arange(len(data.x_train), device=data.device)
        codes = torch.cat([self.represent(data.train_batch(i, binarize, gen))
                           for i in idx.split(_BATCH)])                     # (N, D)
        self.train(was_training)
        self.fit_expost(codes.double().cpu().numpy(), seed)

    def fit_expost(self, codes: np.ndarray, seed: int = 0) -> "GaussianMixture":
        """EM fit of the mixture to codes (N, D); stores it in the buffers."""
        # imported here: every stage imports the model registry, few fit a mixture,
        # and scikit-learn costs ~2 s of start-up per stage process
        from sklearn.mixture import GaussianMixture
        k = self.cfg.expost_components
        if len(codes) < k:
            raise ValueError(f"expost_components = {k} needs at least {k} training codes, "
                             f"got {len(codes)}; lower models.<name>.expost_components")
        gmm = GaussianMixture(k, covariance_type=self.cfg.expost_covariance,
                              reg_covar=self.cfg.expost_reg_covar, random_state=seed).fit(codes)
        d = codes.shape[1]
        cov = {"full": lambda c: c,                                      # (K, D, D)
               "tied": lambda c: np.broadcast_to(c, (k, d, d)),          # (D, D)
               "diag": lambda c: c[:, :, None] * np.eye(d),              # (K, D)
               "spherical": lambda c: c[:, None, None] * np.eye(d)}[gmm.covariance_type](
                   gmm.covariances_)
        as_buffer = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        self.expost_weights.copy_(as_buffer(gmm.weights_))
        self.expost_means.copy_(as_buffer(gmm.means_))
        self.expost_scale_tril.copy_(as_buffer(np.linalg.cholesky(cov)))   # float64 Cholesky
        self.expost_fitted.fill_(True)
        return gmm

    # --- diagnostics ----------------------------------------------------------------
    def diagnostics(self, x):
        """Test reconstruction error, active code units, encoder Jacobian norm, and the
        mean log-density of the test codes under the ex-post mixture."""
        with torch.no_grad():
            codes = torch.cat([self.represent(c) for c in x.split(_BATCH)])   # (N, D)
            nats = torch.cat([self.recon(z, c) for z, c in zip(codes.split(_BATCH), x.split(_BATCH))])
            sq_err = torch.cat([(self.decode(z).mean - c).pow(2).flatten(1).mean(1)
                                for z, c in zip(codes.split(_BATCH), x.split(_BATCH))])
            jac = jacobian_frobenius(self.represent, x[:JACOBIAN_EXAMPLES])
            out = {"recon_nats": float(nats.mean()), "recon_mse": float(sq_err.mean()),
                   "active_fraction": active_fraction(codes),
                   "active_fraction_stderr": _stderr(active_fractions(codes)),
                   "jacobian_sq_norm": float(jac.mean()),
                   "jacobian_sq_norm_stderr": _stderr(jac)}
            if bool(self.expost_fitted):
                out["expost_code_logpdf"] = float(self.prior().log_prob(codes).mean())
        return out


MODEL = AE
