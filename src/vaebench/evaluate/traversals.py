"""Latent traversals: each code dimension swept while the others stay fixed.

For a few test images x with code z = represent(x), dimension d is set to
centre_d + t * scale_d for t in linspace(-limit, limit, n_steps) and decoded.
centre and scale are the prior's mean and standard deviation when the model has
a prior (so the sweep covers +-3 prior standard deviations, as in the beta-VAE
papers), else the mean and standard deviation of the codes of the test images
(deterministic autoencoders have no prior). In a disentangled code every row
of the figure changes one factor only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaebench.models.capabilities import LatentPrior, NotFitted


def latent_reference(prior, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(centre (D,), scale (D,), where from): the prior's mean and stddev, or the codes'."""
    if prior is not None:
        try:
            return prior.mean.detach(), prior.stddev.detach(), "prior"
        except (NotImplementedError, AttributeError):
            pass  # a prior without closed-form moments: fall back to the codes
    return codes.mean(0), codes.std(0), "codes"


def fitted_prior(model):
    """The model's p(z) where it has one and it is fitted, else None."""
    if not isinstance(model, LatentPrior):
        return None
    try:
        return model.prior()
    except NotFitted:       # an autoencoder before its ex-post fit: the codes set the range
        return None


def traversal_codes(z: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor,
                    n_steps: int, limit: float) -> torch.Tensor:
    """Codes of a traversal of every dimension around z.  # (D,) -> (D, n_steps, D)"""
    dim = z.shape[-1]
    steps = torch.linspace(-limit, limit, n_steps, dtype=z.dtype, device=z.device)
    codes = z.expand(dim, n_steps, dim).clone()                      # (D, S, D)
    values = centre[:, None] + steps[None, :] * scale[:, None]       # (D, S)
    idx = torch.arange(dim, device=z.device)
    codes[idx, :, idx] = values
    return codes


@torch.no_grad()
def traversal_images(model, x: torch.Tensor, n_steps: int, limit: float,
                     reference_codes: torch.Tensor) -> tuple[np.ndarray, dict]:
    """Decoded traversals of every test image in x (n, C, H, W) -> (n, D, S, H, W)."""
    z = model.represent(x)                                          # (n, D)
    centre, scale, source = latent_reference(fitted_prior(model), reference_codes)
    rows = []
    for zi in z:
        codes = traversal_codes(zi, centre, scale, n_steps, limit)  # (D, S, D)
        mean = model.decode(codes.reshape(-1, codes.shape[-1])).mean  # (D*S, C, H, W)
        rows.append(mean[:, 0].reshape(*codes.shape[:2], *mean.shape[-2:]).clamp(0, 1))
    info = {"reference": source, "limit": limit, "n_steps": n_steps,
            "scale": scale.cpu().tolist()}
    return torch.stack(rows).cpu().numpy(), info


def mosaic(tiles: np.ndarray, pad: int = 2, fill: float = 0.5) -> np.ndarray:
    """Tile images (R, S, H, W) into one (R*(H+pad)-pad, S*(W+pad)-pad) image."""
    rows, cols, h, w = tiles.shape
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), fill, dtype=float)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tiles[r, c]
    return out


def save_traversal_figure(path: str | Path, inputs: np.ndarray, traversals: np.ndarray,
                          limit: float, title: str = "") -> None:
    """One panel per test image: its input on top, one row per code dimension below.

    inputs (n, H, W), traversals (n, D, S, H, W); written as PNG to ``path``.
    """
    from matplotlib.figure import Figure
    n, dim, steps, h, w = traversals.shape
    pad = 2
    fig = Figure(figsize=(n * (steps * 0.5 + 0.4), (dim + 1) * 0.5 + 0.7), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for i, ax in enumerate(axes):
        top = np.full((steps, h, w), 0.5)
        top[steps // 2] = inputs[i]                                  # the input, centred
        ax.imshow(mosaic(np.concatenate([top[None], traversals[i]]), pad),
                  cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks(np.arange(dim + 1) * (h + pad) + h / 2,
                      ["input", *(f"z{d}" for d in range(dim))], fontsize=7)
        ax.set_xticks(np.arange(steps) * (w + pad) + w / 2,
                      [f"{t:+.1f}" for t in np.linspace(-limit, limit, steps)], fontsize=6)
        ax.tick_params(length=0)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
