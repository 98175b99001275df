"""Decoder likelihoods p(x|z): the decoder network emits ``n_maps`` image-shaped
maps per channel; a likelihood turns them into a ``torch.distributions``
object over whole images (event shape (C, H, W))."""
from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Distribution, Independent


class BernoulliLikelihood:
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i)) -- for binary images."""

    n_maps = 1

    def __call__(self, out: torch.Tensor) -> Distribution:      # out: (..., C, H, W)
        return Independent(Bernoulli(logits=out), 3)


LIKELIHOODS = {"bernoulli": BernoulliLikelihood}
