"""Inference gaps (Cremer, Li and Duvenaud 2018, "Inference Suboptimality in VAEs").

The gap between log p(x) and the ELBO of the encoder's q splits in two:

    log p(x) - L[q] = (log p(x) - L[q*])  +  (L[q*] - L[q])
                       approximation gap     amortisation gap

where q* is the best distribution of the variational family for this one x.
q* is found as in stochastic variational inference with per-datapoint
parameters (Hoffman et al. 2013, "Stochastic Variational Inference"): a diagonal Gaussian
per test point, initialised at the encoder's q(z|x), trained by Adam on the
reparameterised ELBO with the decoder and prior fixed; the learning rate decays
linearly to a tenth so that the last iterate settles near the optimum instead of
jittering around it with the gradient noise.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal
from tqdm.auto import tqdm

from vaebench.evaluate.loglik.estimate import GAPS, private_rng, seed_device, draw_base_seed
from vaebench.models.elbo import elbo_terms


def diagonal_start(q: Distribution) -> tuple[Tensor, Tensor] | str:
    """(mean, stddev) of q to start q* from, or why q cannot start a diagonal Gaussian."""
    try:
        loc, scale = q.mean, q.stddev
    except NotImplementedError:
        return f"q(z|x) ({type(q).__name__}) has no mean and standard deviation"
    if loc.shape != scale.shape or not bool((scale > 0).all() & torch.isfinite(loc).all()):
        return f"q(z|x) ({type(q).__name__}) is not a continuous density with positive spread"
    return loc, scale


def reparameterised_elbo(model, x: Tensor, q: Distribution, prior: Distribution,
                         n_samples: int) -> Tensor:
    """ELBO per point (N,): MC reconstruction over n_samples codes (one decoder call) - KL."""
    z = q.rsample((n_samples,))                              # (S, N, *E)
    tail = [1] * (x.dim() - 1)

    def log_lik(z):                                          # one decoder call: (S, N)
        lpx = model.decode(z.flatten(0, 1)).log_prob(x.repeat(n_samples, *tail))
        return lpx.view(n_samples, len(x))

    return elbo_terms(log_lik, q, prior, z).elbo


def fit_local_posterior(model, x: Tensor, q: Distribution, *, steps: int, lr: float,
                        n_samples: int, seed: int = 0, progress: bool = True
                        ) -> tuple[Independent, list[float]]:
    """q*: a diagonal Gaussian per point maximising its ELBO; returns (q*, mean ELBO per step)."""
    start = diagonal_start(q)
    if isinstance(start, str):
        raise ValueError(start)
    loc = start[0].detach().clone().requires_grad_(True)
    log_scale = start[1].detach().log().requires_grad_(True)
    event_dims = len(q.event_shape)
    prior = model.prior()
    opt = torch.optim.Adam([loc, log_scale], lr=lr)
    decay = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.1, total_iters=steps)
    history = []
    with private_rng(x.device), torch.enable_grad():
        seed_device(x.device, draw_base_seed(seed, GAPS))
        for _ in tqdm(range(steps), desc="q* per point", disable=None if progress else True,
                      leave=False):
            q_star = Independent(Normal(loc, log_scale.exp()), event_dims)
            elbo = reparameterised_elbo(model, x, q_star, prior, n_samples)   # (N,)
            # gradients for q*'s parameters only: the decoder and prior stay fixed
            loc.grad, log_scale.grad = torch.autograd.grad(-elbo.sum(), [loc, log_scale])
            opt.step()
            decay.step()
            history.append(float(elbo.detach().mean()))
    return Independent(Normal(loc.detach(), log_scale.detach().exp()), event_dims), history
