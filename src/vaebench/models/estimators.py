"""Gradient estimators for the encoder parameters phi, and a way to compare them.

Both estimate grad_phi E_{q_phi(z|x)}[f(z)], where grad_phi cannot simply be moved
inside the expectation because q_phi itself depends on phi:

* ``reparam`` -- the reparameterisation trick (Kingma & Welling 2014, arXiv:1312.6114):
  z = mu + sigma * eps, eps ~ N(0, I),
  so grad_phi E_q[f(z)] = E_eps[grad_phi f(mu + sigma * eps)] (pathwise).
* ``score_function`` -- the log-derivative (REINFORCE) estimator (Williams 1992,
  "Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement
  Learning"):
  grad_phi E_q[f(z)] = E_q[f(z) grad_phi log q_phi(z|x)],
  estimated with S samples through the surrogate
  (1/S) sum_s f(z_s) + [f(z_s) - b_s]_detached * (log q(z_s) - [log q(z_s)]_detached),
  whose *value* is the plain Monte Carlo estimate of E_q[f] and whose gradient
  is the score-function estimate. z_s is not reparameterised (``sample``, not
  ``rsample``), so f is differentiated only through its own parameters (theta
  keeps its pathwise gradient E_q[grad_theta f(z)]).

A baseline b_s that does not depend on z_s leaves the estimator unbiased
(E_q[grad log q] = 0) and reduces its variance when it tracks f:

* ``none``          -- b_s = 0;
* ``leave_one_out`` -- b_s = mean of f over the *other* S - 1 samples of the
  same example (needs S >= 2); independent of z_s, so still unbiased.

An estimator maps (q, f, S, baseline) to a per-example surrogate of shape
(B,) whose value is the Monte Carlo estimate of E_q[f(z)]; f maps codes
(S, B, D) to values (S, B).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.distributions import Distribution

from vaebench.models.capabilities import PerDatapoint

Fn = Callable[[torch.Tensor], torch.Tensor]


def no_baseline(f: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(f)


def leave_one_out(f: torch.Tensor) -> torch.Tensor:
    """b_s = (sum_{s' != s} f_s') / (S - 1) per example; f: (S, B)."""
    s = f.shape[0]
    if s < 2:
        raise ValueError("baseline 'leave_one_out' needs at least 2 samples per example")
    return (f.sum(0, keepdim=True) - f) / (s - 1)


BASELINES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": no_baseline,
    "leave_one_out": leave_one_out,
}


def reparam(q: Distribution, f: Fn, n_samples: int, baseline: str = "none") -> torch.Tensor:
    """Pathwise estimate; ``baseline`` is accepted for a common signature and unused."""
    z = q.rsample((n_samples,))                      # (S, B, D), differentiable in phi
    return f(z).mean(0)                              # (B,)


def score_function(q: Distribution, f: Fn, n_samples: int,
                   baseline: str = "none") -> torch.Tensor:
    """Log-derivative estimate with an optional baseline (see the module docstring)."""
    z = q.sample((n_samples,))                       # (S, B, D), no gradient path to phi
    fz = f(z)                                        # (S, B), gradient to theta only
    log_q = q.log_prob(z)                            # (S, B), gradient to phi
    weight = (fz - BASELINES[baseline](fz)).detach()  # (S, B)
    score_term = weight * (log_q - log_q.detach())   # value 0, gradient f * grad log q
    return (fz + score_term).mean(0)                 # (B,)


ESTIMATORS: dict[str, Callable[..., torch.Tensor]] = {
    "reparam": reparam,
    "score_function": score_function,
}


def gradient_variance(loss_fn: Callable[[], torch.Tensor], params: list[nn.Parameter],
                      repeats: int) -> float:
    """Total variance of a stochastic gradient: sum over the coordinates of ``params``
    of the variance (over ``repeats`` independent draws of ``loss_fn()``) of
    d loss / d param, i.e. E||g - E g||^2, the trace of the gradient's covariance.

    ``loss_fn`` draws fresh Monte Carlo samples on each call; everything else
    (model state, minibatch) stays fixed, so two estimators compare on equal terms.
    """
    if repeats < 2:
        raise ValueError(f"gradient_variance: repeats must be >= 2, got {repeats}")
    draws = []
    for _ in range(repeats):
        grads = torch.autograd.grad(loss_fn(), params, allow_unused=True)
        draws.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                for p, g in zip(params, grads)]))
    g = torch.stack(draws)                           # (R, P)
    return float(g.var(0, unbiased=True).sum())


def estimator_variances(model, x: torch.Tensor, repeats: int, batch: int = 32) -> dict[str, float]:
    """Gradient variance of the negative ELBO w.r.t. the encoder parameters phi under each
    estimator, on the same model state and the same minibatch ``x[:batch]``.

    ``model`` is a VAE-family model (``encoder``, ``encode``, ``kl``,
    ``expected_log_lik(q, x, gradient, baseline)``, ``cfg.mc_samples``); every
    estimator uses the model's ``mc_samples``. Returns ``grad_var_<estimator>``
    (total variance, :func:`gradient_variance`) for reparam, score_function
    without baseline and, when mc_samples >= 2, with the leave-one-out baseline
    (``grad_var_score_function_loo``), plus their ratios to reparam. Empty when
    ``repeats`` is 0 or the model has no encoder (``PerDatapoint``: SVI).
    """
    if repeats == 0 or isinstance(model, PerDatapoint):     # no encoder: nothing to compare
        return {}
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    xb = x[:batch]
    variants = {"reparam": ("reparam", "none"), "score_function": ("score_function", "none")}
    if model.cfg.mc_samples >= 2:
        variants["score_function_loo"] = ("score_function", "leave_one_out")

    def neg_elbo(gradient: str, baseline: str) -> torch.Tensor:
        q = model.encode(xb)
        kl = model.kl(q)
        return (kl - model.expected_log_lik(q, xb, gradient, baseline)).mean()

    with torch.enable_grad():
        out = {f"grad_var_{name}": gradient_variance(lambda v=v: neg_elbo(*v), params, repeats)
               for name, v in variants.items()}
    for name in variants:
        if name != "reparam":
            out[f"grad_var_ratio_{name}_to_reparam"] = out[f"grad_var_{name}"] / out["grad_var_reparam"]
    out["grad_var_mc_samples"] = float(model.cfg.mc_samples)
    out["grad_var_batch"] = float(len(xb))
    return out
