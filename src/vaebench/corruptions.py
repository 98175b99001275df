"""Corruption processes M(x~|x) of denoising autoencoders (Vincent et al. 2010, "Stacked
Denoising Autoencoders", JMLR 11: masking, additive Gaussian, salt-and-pepper).

Shared by the denoising autoencoder (training) and the robustness evaluation
(testing), so both mean exactly the same thing by "masking at 0.3". Inputs are
float images in [0, 1]; every process returns the same shape, values clipped to
[0, 1], and draws its randomness from ``generator`` (per example, per pixel).

* ``masking``      -- a fraction ``level`` of the input dimensions of each example
                      is set to 0 (each pixel independently with probability level);
* ``gaussian``     -- additive N(0, level^2) noise, clipped to the valid range;
* ``salt_pepper``  -- a fraction ``level`` of the dimensions is replaced, half by
                      0 (pepper) and half by 1 (salt), chosen by a fair coin.
"""
from __future__ import annotations

from typing import Callable

import torch

Corruption = Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def masking(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    _check_fraction(level, "masking")
    return torch.where(_uniform(x, generator) < level, torch.zeros_like(x), x)


def gaussian(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    if level < 0:
        raise ValueError(f"gaussian noise level (sigma) must be >= 0, got {level}")
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + level * noise).clamp(0.0, 1.0)


def salt_pepper(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    _check_fraction(level, "salt_pepper")
    hit = _uniform(x, generator) < level
    salt = _uniform(x, generator) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def _check_fraction(level: float, name: str) -> None:
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"{name} level is a fraction of input dimensions in [0, 1], got {level}")


CORRUPTIONS: dict[str, Corruption] = {
    "masking": masking,
    "gaussian": gaussian,
    "salt_pepper": salt_pepper,
}
