"""Moving sprites: binary sequences for TD-VAE, generated procedurally.

Each sequence has ``n_sprites`` filled squares of side ``sprite_size`` pixels in
an ``image_size`` x ``image_size`` frame, moving with constant velocity and
bouncing off the borders. Everything is integer, so sequences are identical on
every machine:

* a sprite's state is its top-left corner (x, y) in {0, ..., L}, L = image_size
  - sprite_size, and its velocity (vx, vy) with both components drawn from
  {-max_speed, ..., -1, 1, ..., max_speed} (no sprite stands still on an axis);
* one step is p <- p + v per axis; a coordinate that leaves [0, L] is reflected
  back inside (p -> -p or 2L - p) and that velocity component flips sign, so
  the speed |v| never changes (max_speed <= L guarantees one reflection suffices);
* a pixel (row i, column j) is on when some sprite has x <= j < x + size and
  y <= i < y + size (sprites may overlap; their union is drawn).

Stored in the common format (:mod:`vaebench.data.base`) with time as the
channel axis: x is (N, T, H, W). The factors of a sequence are the initial
state of each sprite, ``x_k, y_k, vx_k + max_speed, vy_k + max_speed`` (non-
negative classes); the whole trajectory follows from them (:func:`simulate`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from vaebench.schema import Strict
from vaebench.data.base import save_prepared


BINARY = True                      # frames are 0/1


class MovingSpritesConfig(Strict):
    """``datasets.moving_sprites``: sizes of the sequences and the generator's seeds."""

    n_train: PositiveInt = 2000
    n_test: PositiveInt = 200
    seq_len: int = Field(16, ge=2, description="T, frames per sequence")
    image_size: PositiveInt = 32
    sprite_size: PositiveInt = 4
    n_sprites: PositiveInt = 1
    max_speed: PositiveInt = 2        # velocity components in {-max..-1, 1..max} pixels/frame
    seed: NonNegativeInt = 0
    binarize_seed: NonNegativeInt = 0  # unused by binary frames; kept for the common format

    @model_validator(mode="after")
    def _check_geometry(self):
        room = self.image_size - self.sprite_size
        if room < 1:
            raise ValueError(f"sprite_size {self.sprite_size} must be smaller than "
                             f"image_size {self.image_size}")
        if self.max_speed > room:
            raise ValueError(f"max_speed {self.max_speed} exceeds the room to move "
                             f"(image_size - sprite_size = {room})")
        return self


CONFIG = MovingSpritesConfig   # the registry validates ``datasets.moving_sprites`` against CONFIG


def image_shape(cfg: MovingSpritesConfig) -> tuple[int, ...]:
    """Time on the channel axis: (T, H, W)."""
    return (cfg.seq_len, cfg.image_size, cfg.image_size)


def initial_states(cfg: MovingSpritesConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, K, 4) int64 initial (x, y, vx, vy) per sprite."""
    room = cfg.image_size - cfg.sprite_size
    pos = rng.integers(0, room + 1, size=(n, cfg.n_sprites, 2))
    speed = rng.integers(1, cfg.max_speed + 1, size=(n, cfg.n_sprites, 2))
    sign = rng.choice(np.array([-1, 1]), size=(n, cfg.n_sprites, 2))
    return np.concatenate([pos, speed * sign], axis=-1).astype(np.int64)


def simulate(cfg: MovingSpritesConfig, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, K, 4) initial states -> positions and velocities, each (n, T, K, 2)."""
    room = cfg.image_size - cfg.sprite_size
    p, v = state[..., :2].copy(), state[..., 2:].copy()
    positions, velocities = [p.copy()], [v.copy()]
    for _ in range(cfg.seq_len - 1):
        p = p + v
        low, high = p < 0, p > room
        p = np.where(low, -p, np.where(high, 2 * room - p, p))
        v = np.where(low | high, -v, v)
        positions.append(p.copy())
        velocities.append(v.copy())
    return np.stack(positions, 1), np.stack(velocities, 1)


def render(cfg: MovingSpritesConfig, positions: np.ndarray, chunk: int = 256) -> np.ndarray:
    """(n, T, K, 2) top-left corners -> (n, T, H, W) uint8 frames in {0, 1}."""
    n, t = positions.shape[:2]
    s, size = cfg.image_size, cfg.sprite_size
    grid = np.arange(s)
    out = np.empty((n, t, s, s), dtype=np.uint8)
    for a in range(0, n, chunk):
        p = positions[a:a + chunk, ..., None]                              # (c, T, K, 2, 1)
        inside = (grid >= p) & (grid < p + size)                          # (c, T, K, 2, S)
        cols, rows = inside[..., 0, :], inside[..., 1, :]                 # x: columns, y: rows
        out[a:a + chunk] = (rows[..., :, None] & cols[..., None, :]).any(axis=2)
    return out


def factor_names(cfg: MovingSpritesConfig) -> list[str]:
    return [f"{f}_{k}" for k in range(cfg.n_sprites) for f in ("x", "y", "vx", "vy")]


def prepare(cfg: MovingSpritesConfig, raw_dir: Path, out_dir: Path) -> dict:
    rng = np.random.default_rng(cfg.seed)
    state = initial_states(cfg, cfg.n_train + cfg.n_test, rng)           # (N, K, 4)
    positions, _ = simulate(cfg, state)
    frames = render(cfg, positions)                                       # (N, T, H, W)
    factors = state.copy()
    factors[..., 2:] += cfg.max_speed                                     # classes >= 0
    factors = factors.reshape(len(state), -1)                             # (N, 4K)
    room = cfg.image_size - cfg.sprite_size
    meta = {"dataset": "moving_sprites", "source": "procedural", "max_value": 1,
            "factor_names": factor_names(cfg),
            "factor_sizes": [room + 1, room + 1, 2 * cfg.max_speed + 1,
                             2 * cfg.max_speed + 1] * cfg.n_sprites,
            "ground_truth_factors": False, "sequence": True, "seq_len": cfg.seq_len,
            "description": "bouncing squares, time as the channel axis (vaebench.data."
                           "moving_sprites)"}
    n = cfg.n_train
    return save_prepared(out_dir, x_train=frames[:n], x_test=frames[n:],
                         factors_train=factors[:n], factors_test=factors[n:],
                         meta=meta, binarize_seed=cfg.binarize_seed)
