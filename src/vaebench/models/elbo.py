"""The ELBO's two terms per example, with the KL in closed form where it exists.

    ELBO(x; q) = E_q[log p(x|z)] - KL(q(z|x) || p(z))

(Kingma & Welling 2014, "Auto-Encoding Variational Bayes", arXiv:1312.6114). The KL
is taken from torch.distributions' registry of closed forms (Gaussian q against a
Gaussian prior); where it has none (mixture priors) it is the Monte Carlo mean of
log q(z|x) - log p(z) over the same samples z that estimate the reconstruction term.
Training (models/vae.py) and every evaluation that scores an ELBO call these helpers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor
from torch.distributions import Distribution, kl_divergence


def closed_form_kl(q: Distribution, prior: Distribution) -> Tensor | None:
    """KL(q || prior) per example where torch.distributions registers a closed form, else None."""
    try:
        return kl_divergence(q, prior)
    except NotImplementedError:
        return None


def log_ratio(q: Distribution, prior: Distribution, z: Tensor) -> Tensor:
    """log q(z|x) - log p(z) per sample (S, B): the Monte Carlo integrand of the KL."""
    return q.log_prob(z) - prior.log_prob(z)


def kl_to_prior(q: Distribution, prior: Distribution, z: Tensor) -> tuple[Tensor, bool]:
    """(KL per example (B,), closed form?): the closed form, else the mean of
    :func:`log_ratio` over the samples ``z`` (S, B, ...) drawn from q."""
    kl = closed_form_kl(q, prior)
    if kl is not None:
        return kl, True
    return log_ratio(q, prior, z).mean(0), False


@dataclass
class ELBOTerms:
    """Per-example terms (B,) of the ELBO."""

    log_lik: Tensor         # Monte Carlo E_q[log p(x|z)]
    kl: Tensor              # KL(q || p(z))
    closed_form: bool       # whether the KL is exact or the Monte Carlo estimate

    @property
    def elbo(self) -> Tensor:
        return self.log_lik - self.kl


def elbo_terms(log_lik: Callable[[Tensor], Tensor], q: Distribution, prior: Distribution,
               z: Tensor) -> ELBOTerms:
    """ELBO terms from samples ``z`` (S, B, ...) of q; ``log_lik`` maps them to log p(x|z)
    (S, B) (the caller decodes, so it chooses how the decoder is batched)."""
    # the reconstruction term first: autograd sums the gradient contributions in reverse
    # order of creation, so this order keeps the gradients bit-identical to earlier runs
    log_px = log_lik(z).mean(0)
    kl, closed = kl_to_prior(q, prior, z)
    return ELBOTerms(log_px, kl, closed)
