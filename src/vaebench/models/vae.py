"""Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes",
arXiv:1312.6114; Rezende, Mohamed & Wierstra 2014, arXiv:1401.4082).

q_phi(z|x) = N(mu_phi(x), diag(sigma_phi(x)^2)), p(z) = N(0, I), p_theta(x|z)
from the likelihood. The loss is the negative ELBO

    L(theta, phi) = -E_q[log p_theta(x|z)] + KL(q_phi(z|x) || p(z)),

with the expectation estimated by ``mc_samples`` (default one) reparameterised
samples z = mu + sigma * eps, eps ~ N(0, I) (the reparameterisation trick), and the KL
in closed form (torch.distributions' Gaussian KL, i.e.
1/2 sum_k [sigma_k^2 + mu_k^2 - 1 - log sigma_k^2]).

The estimator of grad_phi E_q[log p(x|z)] (``gradient``, ``mc_samples``,
``baseline``) and the theta/phi update schedule (``optimisation``) are options
of the family; see models/variational.py and models/estimators.py.

``prior`` picks p(z) from :mod:`vaebench.models.priors` (standard N(0, I) or a
learned r_lambda, as in Tomczak & Welling 2018, arXiv:1705.07120). Where torch.distributions has
no closed-form KL(q || p) (mixture priors), the KL is estimated by Monte Carlo
from the same samples as the reconstruction term, log q(z|x) - log p(z): it
joins the integrand of the chosen estimator.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import PositiveInt

from vaebench.models.base import LossTerms, Model, ModelConfig, diagonal_gaussian
from vaebench.models.capabilities import Probabilistic
from vaebench.models.elbo import closed_form_kl, log_ratio
from vaebench.models.estimators import ESTIMATORS, estimator_variances
from vaebench.models.priors import PRIORS
from vaebench.models.variational import SCHEDULES, VariationalOptions


class VAEConfig(ModelConfig, VariationalOptions):
    family: Literal["vae"] = "vae"
    prior: Literal["standard", "gaussian", "mog", "vamp"] = "standard"   # keys of PRIORS
    prior_components: PositiveInt = 10   # mog: mixture components; vamp: pseudo-inputs


class VAE(Probabilistic, Model):
    Config = VAEConfig
    enc_out_factor = 2          # mean and log-variance

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.prior_net = PRIORS[cfg.prior](cfg, self.image_shape)

    def encode(self, x):
        return diagonal_gaussian(self.encoder(x))

    def prior(self):
        return self.prior_net(self.encode)

    def kl(self, q, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example (B,): closed form, else the Monte Carlo mean of
        log q(z|x) - log p(z) over samples z (S, B, D) (one reparameterised draw if None)."""
        prior = self.prior()
        kl = closed_form_kl(q, prior)
        if kl is None:      # draw only when needed: a draw advances the RNG
            z = q.rsample((1,)) if z is None else z
            kl = log_ratio(q, prior, z).mean(0)
        return kl

    def kl_weight_at(self, step: int) -> float:
        """Weight of the KL term in the training loss (1: the ELBO), times the warm-up factor."""
        return self.kl_anneal

    def expected(self, q, f, gradient=None, baseline=None):
        """Monte Carlo E_q[f(z)] per example (B,); grad_phi by the chosen estimator."""
        return ESTIMATORS[gradient or self.cfg.gradient](
            q, f, self.cfg.mc_samples, baseline or self.cfg.baseline)

    def expected_log_lik(self, q, x, gradient=None, baseline=None):
        """Monte Carlo E_q[log p(x|z)] per example (B,)."""
        return self.expected(q, lambda z: self.decode(z).log_prob(x), gradient, baseline)

    def loss(self, x, step):
        return self.elbo_loss(self.encode(x), x, step)

    def elbo_loss(self, q, x, step):
        """Negative ELBO of x under a given q(z|x) (amortised, or per data point)."""
        prior, weight = self.prior(), self.kl_weight_at(step)
        kl = closed_form_kl(q, prior)                    # (B,) or None
        if kl is None:  # Monte Carlo KL on the samples of the reconstruction term
            def mc_kl(z):
                kl = log_ratio(q, prior, z)              # (S, B)
                return kl, {"kl": kl}
            return self.penalised_loss(q, x, step, mc_kl)
        recon = -self.expected_log_lik(q, x)             # (B,)
        loss = (recon + weight * kl).mean()
        return LossTerms(loss, {"recon": recon.mean(), "kl": kl.mean(),
                                "elbo": -(recon + kl).mean()})

    def penalised_loss(self, q, x, step, penalty):
        """-E_q[log p(x|z) - w * penalty(z)], w the KL weight at ``step``, through the
        family's estimator (``expected``) on the samples of the reconstruction term.

        ``penalty(z)`` maps codes (S, B, D) to (total (S, B), {name: part (S, B)}): a
        Monte Carlo KL, or terms that couple the batch through every example's q(z|x_j)
        (beta-TCVAE's minibatch estimates of q(z)). Example i's total may depend on its
        own codes z_i only, as the estimators differentiate each example's term through
        its own samples. The parts are logged; ``kl`` is the part of that name, else the
        KL of q. Returns the terms recon, kl, elbo and the parts.
        """
        weight, seen = self.kl_weight_at(step), {}

        def integrand(z):                                # (S, B, D) -> (S, B)
            log_px_z = self.decode(z).log_prob(x)
            total, parts = penalty(z)
            seen.update(recon=-log_px_z.detach().mean(0),
                        **{k: v.detach().mean(0) for k, v in parts.items()})
            return log_px_z - weight * total

        loss = -self.expected(q, integrand).mean()
        recon = seen.pop("recon")
        kl = seen.pop("kl") if "kl" in seen else self.kl(q).detach()
        return LossTerms(loss, {"recon": recon.mean(), "kl": kl.mean(),
                                "elbo": -(recon + kl).mean(),
                                **{k: v.mean() for k, v in seen.items()}})

    def optim_groups(self):
        return SCHEDULES[self.cfg.optimisation].groups(self)

    def groups_to_step(self, step):
        return SCHEDULES[self.cfg.optimisation].to_step(step)

    def diagnostics(self, x):
        return estimator_variances(self, x, self.cfg.grad_var_repeats)


MODEL = VAE
