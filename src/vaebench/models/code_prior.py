"""Autoregressive priors over grids of code indices (PixelCNN-style, van den Oord
et al. 2016), learned after a VQ autoencoder so that it can sample and bound
its likelihood (van den Oord et al. 2017; Razavi et al. 2019).

``GridPrior`` models one (h, w) grid of indices in raster order:
p(c) = prod_i p(c_i | c_<i), with masked convolutions (the first layer masks
the centre tap, later layers may see it), so logits at position i depend only
on the codes before i. It has the classic PixelCNN blind spot, which narrows
what each conditional sees but keeps it a proper autoregressive distribution.
An optional conditioning grid (the level above, fully known) is embedded,
resized to (h, w) and added in every layer without masking.

``CodePrior`` stacks one GridPrior per level of a hierarchy, top first, each
conditioned on the level above: log p(c_1..c_L) = sum_l log p(c_l | c_{l-1}).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, field_validator
from torch import nn
from torch.distributions import Categorical

from vaebench.schema import Strict


class CodePriorConfig(Strict):
    """``code_prior:`` of a VQ model -- the PixelCNN and its training after the autoencoder."""

    channels: PositiveInt = 32
    layers: PositiveInt = 4
    kernel: int = Field(3, ge=3, description="odd kernel size of the masked convolutions")
    epochs: int = Field(5, ge=0, description="passes over the training codes (0: untrained)")
    lr: float = Field(1e-3, gt=0)
    batch_size: PositiveInt = 128

    @field_validator("kernel")
    @classmethod
    def _odd(cls, k: int) -> int:
        if k % 2 == 0:
            raise ValueError(f"kernel must be odd (a masked kernel has a centre), got {k}")
        return k


class MaskedConv2d(nn.Conv2d):
    """Same-padded conv whose taps see only earlier positions in raster order
    (and the centre too unless ``exclude_centre``)."""

    def __init__(self, c_in: int, c_out: int, k: int, exclude_centre: bool):
        if k % 2 == 0:
            raise ValueError(f"masked convolution needs an odd kernel size, got {k}")
        super().__init__(c_in, c_out, k, padding=k // 2)
        mask = torch.ones(k, k)
        mask[k // 2, k // 2 + (0 if exclude_centre else 1):] = 0   # centre row: right part
        mask[k // 2 + 1:] = 0                                        # rows below
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class GridPrior(nn.Module):
    """p(c | cond) over one (h, w) grid of K-way indices."""

    def __init__(self, num_codes: int, cfg: CodePriorConfig, cond_codes: int | None = None):
        super().__init__()
        c, self.num_codes = cfg.channels, num_codes
        self.embed = nn.Parameter(torch.randn(num_codes, c) * 0.1)   # one-hot @ embed
        self.first = MaskedConv2d(c, c, cfg.kernel, exclude_centre=True)
        self.hidden = nn.ModuleList(MaskedConv2d(c, c, cfg.kernel, exclude_centre=False)
                                    for _ in range(cfg.layers - 1))
        self.out = nn.Conv2d(c, num_codes, 1)
        self.cond_embed = None
        if cond_codes is not None:
            self.cond_embed = nn.Parameter(torch.randn(cond_codes, c) * 0.1)
            self.cond_proj = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(cfg.layers))

    @staticmethod
    def _embed(codes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(codes, table.shape[0]).to(table.dtype)    # (B, h, w, K)
        return (onehot @ table).permute(0, 3, 1, 2)                  # (B, C, h, w)

    @property
    def reach(self) -> int:
        """How many rows above its own a position's logits can see."""
        return (len(self.hidden) + 1) * (self.first.kernel_size[0] // 2)

    def cond_features(self, cond: torch.Tensor | None, shape) -> torch.Tensor | None:
        """The level above (B, h', w') embedded and resized to ``shape`` (B, C, h, w)."""
        if self.cond_embed is None:
            return None
        if cond is None:
            raise ValueError("this prior is conditioned on the level above; pass cond")
        return F.interpolate(self._embed(cond, self.cond_embed), size=tuple(shape),
                             mode="nearest")

    def logits(self, codes: torch.Tensor, cond: torch.Tensor | None = None,
               cond_feats: torch.Tensor | None = None) -> torch.Tensor:
        """(B, h, w) codes -> (B, K, h, w) logits of p(c_i | c_<i, cond)."""
        if cond_feats is None:
            cond_feats = self.cond_features(cond, codes.shape[-2:])
        cond_maps = ([0.0] * (len(self.hidden) + 1) if cond_feats is None
                     else [proj(cond_feats) for proj in self.cond_proj])
        h = self.first(self._embed(codes, self.embed)) + cond_maps[0]
        for layer, c in zip(self.hidden, cond_maps[1:]):
            h = h + layer(F.relu(h)) + c
        return self.out(F.relu(h))

    def log_prob(self, codes: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(B, h, w) -> (B,) log p(codes | cond) in nats."""
        logits = self.logits(codes, cond).permute(0, 2, 3, 1)        # (B, h, w, K)
        return Categorical(logits=logits).log_prob(codes).flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, int], cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw (n, h, w) codes position by position in raster order. Position (i, j)
        sees only rows i - reach..i and columns j - reach..j + reach, so only that
        window is recomputed (the result is the same as over the whole grid)."""
        codes = torch.zeros(n, *shape, dtype=torch.long, device=self.embed.device)
        feats = self.cond_features(cond, shape)
        r = self.reach
        for i in range(shape[0]):
            top = max(0, i - r)
            for j in range(shape[1]):
                left = max(0, j - r)
                rows, cols = slice(top, i + 1), slice(left, j + r + 1)
                window = None if feats is None else feats[:, :, rows, cols]
                logits = self.logits(codes[:, rows, cols], cond_feats=window)
                probs = F.softmax(logits[:, :, -1, j - left], dim=1)          # (n, K)
                codes[:, i, j] = torch.multinomial(probs, 1, generator=generator)[:, 0]
        return codes


class CodePrior(nn.Module):
    """Prior over a hierarchy of code grids (top first), each level given the one above."""

    def __init__(self, num_codes: int, shapes: list[tuple[int, int]], cfg: CodePriorConfig):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.levels = nn.ModuleList(
            GridPrior(num_codes, cfg, cond_codes=None if i == 0 else num_codes)
            for i in range(len(shapes)))

    def log_prob(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """Per-level (B, h_l, w_l) codes -> (B,) sum_l log p(c_l | c_{l-1})."""
        total = 0.0
        for i, (prior, c) in enumerate(zip(self.levels, codes)):
            total = total + prior.log_prob(c, codes[i - 1] if i else None)
        return total

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        codes: list[torch.Tensor] = []
        for prior, shape in zip(self.levels, self.shapes):
            codes.append(prior.sample(n, shape, codes[-1] if codes else None, generator))
        return codes
