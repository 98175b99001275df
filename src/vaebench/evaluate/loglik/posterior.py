"""What the amortised posterior q(z|x) says about the latent space.

- KL(q(z|x) || p(z)): closed form where torch.distributions registers one,
  otherwise the Monte Carlo mean of log q(z|x) - log p(z) under q.
- KL per latent dimension, for a factorised q and prior (both ``Independent``
  over one event dimension): which units carry information.
- Active units (Burda et al. 2016, IWAE paper, section 5.2): unit u is active
  if A_u = Var_x(E_{q(z|x)}[z_u]) exceeds a threshold (0.01 there).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent

from vaebench.evaluate.loglik.estimate import POSTERIOR, private_rng, seed_device, draw_base_seed
from vaebench.models.elbo import closed_form_kl, log_ratio


def kl_or_estimate(q: Distribution, prior: Distribution, mc: Tensor) -> tuple[Tensor, bool]:
    """(KL per point (N,) float64, closed form?) -- ``mc`` is the estimator's own MC estimate
    (the mean log-ratio over its proposal draws), taken where no closed form exists
    (``models.elbo.kl_to_prior`` does the same from samples it is given)."""
    kl = closed_form_kl(q, prior)
    return (mc, False) if kl is None else (kl.double(), True)


def _factorised(d: Distribution) -> bool:
    return isinstance(d, Independent) and d.reinterpreted_batch_ndims == 1


@torch.no_grad()
def kl_per_dimension(q: Distribution, prior: Distribution, n_samples: int,
                     seed: int = 0, device: torch.device | str = "cpu") -> Tensor | None:
    """KL(q(z_u|x) || p(z_u)) per point and unit (N, D); None unless both factorise."""
    if not (_factorised(q) and _factorised(prior)):
        return None
    qb, pb = q.base_dist, prior.base_dist
    kl = closed_form_kl(qb, pb)
    if kl is not None:
        return kl
    with private_rng(device):
        seed_device(torch.device(device), draw_base_seed(seed, POSTERIOR))
        z = qb.sample((n_samples,))                        # (S, N, D)
    return log_ratio(qb, pb, z).mean(0)


@torch.no_grad()
def posterior_means(q: Distribution, n_samples: int, seed: int = 0,
                    device: torch.device | str = "cpu") -> Tensor:
    """E_q[z] per point, flattened (N, D): q.mean, or a Monte Carlo mean without one."""
    try:
        mean = q.mean
    except NotImplementedError:
        with private_rng(device):
            seed_device(torch.device(device), draw_base_seed(seed, POSTERIOR))
            mean = q.sample((n_samples,)).mean(0)
    return mean.reshape(mean.shape[0], -1)


def active_units(means: Tensor, threshold: float = 0.01) -> tuple[int, Tensor]:
    """(number of active units, A_u per unit) from posterior means (N, D)."""
    if means.shape[0] < 2:
        raise ValueError("active units need at least two test points")
    activity = means.detach().double().var(0)               # (D,) over test points
    return int((activity > threshold).sum()), activity
