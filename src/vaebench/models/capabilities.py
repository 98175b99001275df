"""The optional capabilities of a model, one mixin each.

A family declares a capability by inheriting its mixin (before ``Model`` or its parent
family in the class bases) and implements the mixin's abstract methods; a class that
declares one but misses a method cannot be instantiated. The training loop and the
stages ask ``isinstance(model, Capability)`` (``issubclass`` on a class), never probe
attributes. The contract table is in :mod:`vaebench.models.base` and
docs/model_contract.md.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch
from torch.distributions import Distribution

if TYPE_CHECKING:
    from vaebench.models.base import LossTerms


class NotFitted(RuntimeError):
    """A capability whose state ``after_fit`` fits (an ex-post prior) was used before."""


class Generative(ABC):
    """Draws new inputs: ``sample(n)`` -> (n, *image_shape), decoder means."""

    @abstractmethod
    def sample(self, n: int) -> torch.Tensor: ...


class LatentPrior(Generative):
    """Has a density p(z) over its codes (``prior()``); samples decode draws of it."""

    @abstractmethod
    def prior(self) -> Distribution: ...

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.decode(self.prior().sample((n,))).mean


class Probabilistic(LatentPrior):
    """``encode`` gives q(z|x) with a density, ``decode`` p(x|z), ``prior`` p(z): log p(x)
    and the ELBO can be estimated (loglik, robustness's ELBO change)."""


class ExactLikelihood(Probabilistic):
    """log p(x) is tractable: ``exact_log_prob(x)`` per example (B,), the yardstick of
    loglik's estimators."""

    @abstractmethod
    def exact_log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


class PerDatapoint(ABC):
    """Each training example owns variational parameters instead of an amortised encoder.
    Training calls ``training_loss(x, step, index)`` with the examples' training-set
    positions; ``loss(x, step)`` (evaluation, new data) infers q by an optimisation, so
    the loop computes the test terms after the last epoch only, and ``represent`` is not
    differentiable in x."""

    @abstractmethod
    def training_loss(self, x: torch.Tensor, step: int, index: torch.Tensor) -> LossTerms: ...


class ClosedForm(ABC):
    """Fitted in closed form by ``after_fit``: the loop runs no epochs."""


class SequenceInputs(ABC):
    """An input is a sequence of frames on the channel axis, not one image: per-image
    corruptions, probes and factor renderings do not apply."""


CAPABILITIES: tuple[type, ...] = (Generative, LatentPrior, Probabilistic, ExactLikelihood,
                                  PerDatapoint, ClosedForm, SequenceInputs)
