"""Figures drawn by the stages that have a model loaded (samples, reconstructions).

The report stage only reads files; anything that needs a model is drawn here,
by the stage that already holds it (``train``), and saved as PNG. A leaf module
(only :mod:`vaebench.io`), outside report/, so the train stage does not import the
report package.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vaebench import io  # noqa: E402
from vaebench.models.capabilities import Generative  # noqa: E402


def _as_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) or (N, T, H, W) floats in [0, 1] -> (N, H, W) for display (first channel)."""
    x = x.detach().float().cpu().clamp(0, 1)
    return x[:, 0].numpy() if x.dim() == 4 else x.numpy()


def save_image_rows(path: str | Path, rows: list[tuple[str, torch.Tensor]], title: str) -> Path:
    """One labelled row of images per (label, images) pair, saved atomically as PNG."""
    n = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n, 1.2 * len(rows) + 0.4),
                             squeeze=False)
    for r, (label, images) in enumerate(rows):
        imgs = _as_images(images)
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(imgs):
                ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return Path(path)


@torch.no_grad()
def model_figures(model, x_test: torch.Tensor, out_dir: str | Path, name: str,
                  n: int = 10, seed: int = 0) -> list[Path]:
    """Reconstructions of the first ``n`` test images, ``2n`` prior samples, and the
    model's own figures (:meth:`vaebench.models.base.Model.figures`)."""
    out_dir = Path(out_dir)
    model.eval()
    x = x_test[:n]
    paths = [save_image_rows(out_dir / "reconstructions.png",
                             [("input", x), ("recon.", model.reconstruct(x))],
                             f"{name}: test inputs and reconstructions")]
    torch.manual_seed(seed)
    if isinstance(model, Generative):
        samples = model.sample(2 * n)
        paths.append(save_image_rows(out_dir / "samples.png",
                                     [("", samples[:n]), ("", samples[n:])],
                                     f"{name}: samples (decoder means at z ~ prior)"))
    torch.manual_seed(seed)
    paths += model.figures(x_test, out_dir)
    return paths
