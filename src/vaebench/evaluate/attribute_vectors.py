"""Attribute vectors in code space (White 2016, "Sampling Generative Networks",
arXiv:1609.04468).

The "smile vector" idea: encode images with and without an attribute, take
the difference of the mean codes, add it to the code of another image and
decode -- the decoded image should now show the attribute. On dSprites the
attribute is a factor moved from one value to another (scale small -> large,
shape square -> heart, posX left -> right, ...):

    v = mean_i z(x_i | factor = target) - mean_i z(x_i | factor = source)      (D,)
    x' = decode(z(x) + v)   for other images x with factor = source

and a factor classifier trained on the dataset itself judges whether x' shows
the target value (``hit_rate``). Two references make the number readable:
``baseline_hit_rate``, the same judgement with a zero vector (plain
reconstructions: how often the target is read off without any arithmetic),
and ``recon_source_rate``, how often the reconstructions are read as their
true source value (whether the judge can read this model's decodes at all).

Everything here is a pure function of callables over numpy arrays, so the
tests drive it with hand-made models.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from vaebench.evaluate.factor_classifier import within

CodesFn = Callable[[np.ndarray], np.ndarray]      # factors (n, F) -> codes (n, D)
DecodeFn = Callable[[np.ndarray], np.ndarray]     # codes (n, D) -> images (n, H, W) in [0, 1]
ClassifyFn = Callable[[np.ndarray], np.ndarray]   # images (n, H, W) -> factor classes (n, F)


def conditioned_factors(factor_sizes, n: int, rng: np.random.Generator,
                        fixed: dict[int, int]) -> np.ndarray:
    """n uniform factor combinations with column k held at ``fixed[k]``.  # (n, F)"""
    sizes = np.asarray(factor_sizes)
    for k, value in fixed.items():
        if not 0 <= k < len(sizes) or not 0 <= value < sizes[k]:
            raise ValueError(f"cannot fix factor {k} to {value}: sizes are {tuple(sizes)}")
    factors = rng.integers(0, sizes, size=(n, len(sizes)))
    for k, value in fixed.items():
        factors[:, k] = value
    return factors


def attribute_vector(codes_source: np.ndarray, codes_target: np.ndarray) -> np.ndarray:
    """Mean code difference target - source.  # (n, D), (m, D) -> (D,)"""
    return np.asarray(codes_target, float).mean(0) - np.asarray(codes_source, float).mean(0)


def evaluate_attribute(codes_fn: CodesFn, decode_fn: DecodeFn, classify_fn: ClassifyFn,
                       factor_sizes, factor: int, source: int, target: int, *,
                       n_vector: int, n_apply: int, rng: np.random.Generator,
                       tolerance: int = 0, vector_scale: float = 1.0) -> tuple[dict, dict]:
    """Estimate one attribute vector and judge it on ``n_apply`` other images.

    ``vector_scale`` multiplies the vector (0 gives the reconstruction baseline).
    Returns (numbers, examples): rates in [0, 1] and the vector's norm; examples
    hold the vector, the applied factors, the reconstructed and shifted images
    and the classes read off them.
    """
    if source == target:
        raise ValueError(f"source and target must differ (both {source})")
    codes_src = codes_fn(conditioned_factors(factor_sizes, n_vector, rng, {factor: source}))
    codes_tgt = codes_fn(conditioned_factors(factor_sizes, n_vector, rng, {factor: target}))
    vector = vector_scale * attribute_vector(codes_src, codes_tgt)             # (D,)
    applied = conditioned_factors(factor_sizes, n_apply, rng, {factor: source})  # (m, F)
    codes = codes_fn(applied)                                                   # (m, D)
    recon, shifted = decode_fn(codes), decode_fn(codes + vector)                # (m, H, W)
    read_recon = classify_fn(recon)[:, factor]                                  # (m,)
    read_shifted = classify_fn(shifted)[:, factor]
    numbers = {
        "hit_rate": float(within(read_shifted, target, tolerance).mean()),
        "source_rate": float(within(read_shifted, source, tolerance).mean()),
        "baseline_hit_rate": float(within(read_recon, target, tolerance).mean()),
        "recon_source_rate": float(within(read_recon, source, tolerance).mean()),
        "vector_norm": float(np.linalg.norm(vector)),
    }
    examples = {"vector": vector, "factors": applied, "recon": recon, "shifted": shifted,
                "read_recon": read_recon, "read_shifted": read_shifted}
    return numbers, examples


def save_attribute_figure(path, panels: list[dict], title: str = "") -> None:
    """One panel per attribute: rows of examples, columns input | reconstruction |
    reconstruction + vector | the true target image.

    Each panel is {"name", "tiles" (k, 4, H, W) in [0, 1], "caption"}; PNG to ``path``.
    """
    from matplotlib.figure import Figure

    from vaebench.evaluate.traversals import mosaic
    n = len(panels)
    k, cols, h, w = panels[0]["tiles"].shape
    pad = 2
    fig = Figure(figsize=(n * 2.6, k * 0.65 + 1.0), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        ax.imshow(mosaic(panel["tiles"], pad), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks(np.arange(cols) * (w + pad) + w / 2,
                      ["input", "recon", "+ vector", "target"][:cols], fontsize=7)
        ax.set_yticks([])
        ax.tick_params(length=0)
        ax.set_title(f"{panel['name']}\n{panel['caption']}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
