"""A classifier that reads ground-truth factors off images: the judge of decoded images.

The attribute-vector evaluation decodes shifted codes and asks which factor
value the result shows. A classifier trained on the dataset itself (images
drawn for uniform factor combinations, with known factors) answers; its own
held-out accuracy is reported beside every number it produces.

Features (documented because they make a small MLP enough): a ``crop x crop``
window centred on the image's intensity centroid (translation-invariant, so
shape, scale and orientation are read from the same pixels wherever the sprite
is), the two marginal profiles (column and row sums, which locate the sprite)
and the total intensity (its area). One MLP with a softmax head per factor,
trained with the sum of the per-factor cross-entropies. Inputs are intensities
in [0, 1], so blurry decoder means are read the same way as binary images.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def image_features(x: torch.Tensor, crop: int) -> torch.Tensor:
    """(n, 1, H, W) intensities -> (n, crop^2 + W + H + 1) features."""
    img = x[:, 0]                                                   # (n, H, W)
    n, h, w = img.shape
    mass = img.sum((1, 2))                                          # (n,)
    safe = mass.clamp_min(1e-6)
    cols = torch.arange(w, dtype=x.dtype, device=x.device) + 0.5
    rows = torch.arange(h, dtype=x.dtype, device=x.device) + 0.5
    cx = (img.sum(1) * cols).sum(1) / safe                          # (n,) centroid, pixels
    cy = (img.sum(2) * rows).sum(1) / safe
    cx = torch.where(mass > 0, cx, torch.full_like(cx, w / 2))      # empty image: the centre
    cy = torch.where(mass > 0, cy, torch.full_like(cy, h / 2))
    offsets = torch.arange(crop, dtype=x.dtype, device=x.device) - crop / 2 + 0.5
    gx = (cx[:, None] + offsets) / (w / 2) - 1                      # (n, crop) in [-1, 1]
    gy = (cy[:, None] + offsets) / (h / 2) - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)
    window = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")  # (n, 1, c, c)
    return torch.cat([window.flatten(1), img.sum(1) / 8, img.sum(2) / 8,
                      (mass / 100)[:, None]], 1)


class FactorClassifier(nn.Module):
    """Images (n, 1, H, W) in [0, 1] -> one set of logits per factor."""

    def __init__(self, factor_sizes, image_hw: tuple[int, int], crop: int = 24,
                 hidden: int = 256):
        super().__init__()
        self.factor_sizes = [int(s) for s in factor_sizes]
        self.crop = crop
        n_in = crop * crop + image_hw[0] + image_hw[1] + 1
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, sum(self.factor_sizes)))

    def logits(self, features: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(features).split(self.factor_sizes, dim=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.logits(image_features(x, self.crop))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
        """Most probable class of every factor -> (n, F) int64."""
        out = [torch.stack([logits.argmax(1) for logits in self(xb)], 1).cpu()
               for xb in x.split(batch_size)]
        return torch.cat(out).numpy()


def within(predicted: np.ndarray, truth: np.ndarray, tolerance: int = 0) -> np.ndarray:
    """Whether each predicted class is within ``tolerance`` classes of the truth.  # (n,)"""
    return np.abs(np.asarray(predicted) - np.asarray(truth)) <= tolerance


def fit_heads(clf: nn.Module, inputs, y: torch.Tensor, n: int, *, epochs: int,
              batch_size: int, lr: float, generator: torch.Generator) -> nn.Module:
    """Adam on the sum of the per-factor cross-entropies; returns ``clf`` in eval mode.

    ``clf.logits(inputs(idx))`` gives one (B, size) logit tensor per factor for the
    examples ``idx`` of the first ``n`` rows; ``y`` (n, F) holds their classes. Shared by
    every classifier of the evaluations (the attribute-vector judge, the feature net of
    the sample-quality stage), so they are trained the same way."""
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    clf.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=generator, device=y.device).split(batch_size):
            loss = sum(F.cross_entropy(logits, y[idx, j])
                       for j, logits in enumerate(clf.logits(inputs(idx))))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return clf.eval()


def train_factor_classifier(images, factor_sizes, cfg, rng: np.random.Generator,
                            device: torch.device | str = "cpu", max_value: float = 1.0,
                            chunk: int = 2000):
    """Train on ``cfg.n_train`` images of uniform factors; test on ``cfg.n_test`` more.

    ``images(factors (n, F)) -> (n, H, W)`` draws the dataset's images; ``cfg`` is
    a :class:`vaebench.sections.disentangle.FactorClassifierConfig`. The features of every image
    are computed once (in chunks), so an epoch costs only the MLP. Returns the
    classifier (eval mode) and its held-out (predicted, true) factors, (n_test, F).
    """
    sizes = np.asarray(factor_sizes)
    factors = rng.integers(0, sizes, size=(cfg.n_train + cfg.n_test, len(sizes)))  # (N, F)
    feats, image_hw = [], None
    for start in range(0, len(factors), chunk):
        x = torch.from_numpy(images(factors[start:start + chunk])).to(device)
        x = x.float().div_(max_value)[:, None]                      # (n, 1, H, W)
        image_hw = tuple(x.shape[-2:])
        feats.append(image_features(x, cfg.crop))
    feats = torch.cat(feats)                                        # (N, n_features)
    y = torch.from_numpy(factors).to(device)
    torch.manual_seed(int(rng.integers(2**31 - 1)))
    clf = FactorClassifier(sizes, image_hw, cfg.crop, cfg.hidden).to(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(rng.integers(2**31 - 1)))
    fit_heads(clf, lambda idx: feats[idx], y, cfg.n_train, epochs=cfg.epochs,
              batch_size=cfg.batch_size, lr=cfg.lr, generator=gen)
    with torch.no_grad():
        predicted = torch.stack([lg.argmax(1) for lg in clf.logits(feats[cfg.n_train:])], 1)
    return clf, predicted.cpu().numpy(), factors[cfg.n_train:]
