"""dSprites-compatible images, generated procedurally (or the original, if present).

The factor grid and index order are those of the original dSprites
(Matthey et al. 2017): shape 3 (square, ellipse, heart), scale 6
(0.5, 0.6, ..., 1.0), orientation 40 (linspace(0, 2pi, 40)), posX 32 and
posY 32 (linspace(0, 1, 32)); 737,280 images, each combination exactly once,
index = sum(classes * [245760, 40960, 1024, 32, 1]) -- posY fastest.

The original sprites' geometry is not published, so this is *not* dSprites but
a dSprites-compatible generator with its own geometry, documented here:

* a pixel (row i, column j) is "on" when its centre (j + 0.5, i + 0.5) lies in
  the shape; no anti-aliasing, so images are exactly binary and identical on
  every run and machine;
* the sprite centre is (12 + 40 * posX, 12 + 40 * posY) pixels: posX moves
  right, posY moves down;
* shape coordinates (a, b) are the pixel offset from the centre divided by
  ``8 * scale`` pixels and rotated by ``-orientation`` (counter-clockwise
  rotation of the sprite on screen, with b pointing up);
* square: max(|a|, |b|) <= 1 (side 16 px at scale 1);
* ellipse: a^2 + (b / 0.5)^2 <= 1 (axes 16 px and 8 px at scale 1);
* heart: (u^2 + v^2 - 1)^3 - u^2 v^3 <= 0 with (u, v) = 1.2 * (a, b - 0.1),
  the classical heart curve, about 2 units wide.

At scale 1 the rotated square reaches 11.3 px from the centre, so every sprite
stays inside the 64 x 64 frame. If ``data/raw/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``
exists, its images are used instead (``meta.source`` says which).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import NonNegativeInt, PositiveInt

from vaebench.schema import Strict
from vaebench.data.base import DataError, save_prepared

# Images can be drawn for any factor combination (``Images``), so the
# disentanglement evaluation applies to models of this dataset.
GROUND_TRUTH_FACTORS = True
BINARY = True                      # pixels are 0/1 (a Bernoulli decoder fits as is)
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
FACTOR_VALUES = {
    "shape": [1.0, 2.0, 3.0],
    "scale": np.linspace(0.5, 1.0, 6).tolist(),
    "orientation": np.linspace(0.0, 2 * np.pi, 40).tolist(),
    "posX": np.linspace(0.0, 1.0, 32).tolist(),
    "posY": np.linspace(0.0, 1.0, 32).tolist(),
}
INDEX_BASES = np.array([245760, 40960, 1024, 32, 1])
N_IMAGES = 737_280
IMAGE_SIZE = 64
ORIGINAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"

_UNIT_PX, _MARGIN_PX, _SPAN_PX = 8.0, 12.0, 40.0


class DSpritesConfig(Strict):
    """``datasets.dsprites``: a seeded subsample of the factor grid (None: all images)."""

    n_train: PositiveInt | None = None
    n_test: PositiveInt = 1000
    split_seed: NonNegativeInt = 0
    binarize_seed: NonNegativeInt = 0


CONFIG = DSpritesConfig   # the registry validates ``datasets.dsprites`` against CONFIG


def image_shape(cfg: DSpritesConfig) -> tuple[int, ...]:
    return (1, IMAGE_SIZE, IMAGE_SIZE)


def index_to_factors(index: np.ndarray) -> np.ndarray:
    """(n,) image indices -> (n, 5) factor classes."""
    index = np.asarray(index)
    if index.size and (index.min() < 0 or index.max() >= N_IMAGES):
        raise ValueError(f"dSprites index out of range [0, {N_IMAGES})")
    return np.stack(np.unravel_index(index, FACTOR_SIZES), axis=-1).astype(np.int64)


def factors_to_index(factors: np.ndarray) -> np.ndarray:
    """(n, 5) factor classes -> (n,) image indices."""
    return np.asarray(factors, dtype=np.int64) @ INDEX_BASES


def render(factors: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Draw the sprites for (n, 5) factor classes -> (n, 64, 64) uint8 in {0, 1}.

    ``chunk`` images are drawn at a time; small chunks keep the float64
    temporaries in cache (256 renders ~3x faster than 4096, same pixels). Each
    image evaluates only its own shape's inequality (5x faster than all three and
    a select, the same pixels: tests/data/test_dsprites.py).
    """
    factors = np.asarray(factors, dtype=np.int64)
    if factors.ndim != 2 or factors.shape[1] != 5:
        raise ValueError(f"factors must have shape (n, 5), got {factors.shape}")
    if (factors < 0).any() or (factors >= np.array(FACTOR_SIZES)).any():
        raise ValueError(f"factor classes out of range for sizes {FACTOR_SIZES}")
    out = np.empty((len(factors), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    centres = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5
    for start in range(0, len(factors), chunk):
        f = factors[start:start + chunk]
        scale = np.asarray(FACTOR_VALUES["scale"])[f[:, 1]][:, None, None]      # (n, 1, 1)
        theta = np.asarray(FACTOR_VALUES["orientation"])[f[:, 2]][:, None, None]
        cx = (_MARGIN_PX + _SPAN_PX * np.asarray(FACTOR_VALUES["posX"])[f[:, 3]])[:, None, None]
        cy = (_MARGIN_PX + _SPAN_PX * np.asarray(FACTOR_VALUES["posY"])[f[:, 4]])[:, None, None]
        dx = (centres[None, None, :] - cx) / (_UNIT_PX * scale)                  # (n, 1, W)
        dy = (cy - centres[None, :, None]) / (_UNIT_PX * scale)                  # (n, H, 1), up
        cos, sin = np.cos(theta), np.sin(theta)
        a = cos * dx + sin * dy                                                  # (n, H, W)
        b = -sin * dx + cos * dy
        drawn = out[start:start + len(f)]
        for shape, inside in enumerate(_SHAPES):
            rows = f[:, 0] == shape
            if rows.any():
                drawn[rows] = inside(a[rows], b[rows])
    return out


# shape class -> is the point (a, b), in sprite units, inside it (the geometry above)
def _square(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(a), np.abs(b)) <= 1.0


def _ellipse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a ** 2 + (b / 0.5) ** 2 <= 1.0


def _heart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    u, v = 1.2 * a, 1.2 * (b - 0.1)
    u2, t = u * u, u * u + v * v - 1.0
    return t * t * t - u2 * (v * v * v) <= 0.0      # products, not ** 3 (pow: 3x slower)


_SHAPES = (_square, _ellipse, _heart)


class Images:
    """Images for arbitrary factor classes: rendered, or looked up in the original file.

    Evaluations use this to sample observations conditioned on factors straight
    from the grid, whatever subsample the model was trained on.
    """

    def __init__(self, raw_dir: str | Path = "data/raw"):
        path = Path(raw_dir) / ORIGINAL_FILE
        self.source = "procedural"
        self._imgs = None
        if path.exists():
            self._imgs = load_original(path)
            self.source = f"original:{path}"

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        if self._imgs is None:
            return render(factors)
        return np.asarray(self._imgs[factors_to_index(factors)], dtype=np.uint8)


def load_original(path: Path) -> np.ndarray:
    """The original dSprites images, (737280, 64, 64) uint8, checked for shape."""
    try:
        with np.load(path) as npz:
            if "imgs" not in npz.files:
                raise DataError(f"{path}: no 'imgs' array; expected the dSprites npz "
                                f"with 'imgs' of shape ({N_IMAGES}, 64, 64)")
            imgs = npz["imgs"]
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{path}: cannot be read ({type(err).__name__}: {err}); expected "
                        f"{ORIGINAL_FILE} from the dSprites release") from None
    if imgs.shape != (N_IMAGES, IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: 'imgs' has shape {imgs.shape}, "
                        f"expected ({N_IMAGES}, {IMAGE_SIZE}, {IMAGE_SIZE})")
    return imgs


def split_indices(cfg: DSpritesConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test image indices. Train indices are sorted; test indices stay in
    their random draw order, so any prefix of the test set is an unbiased sample
    (stages that evaluate the first n test images rely on this). With ``n_train``
    None, train is the whole grid in the original index order and the test images
    are drawn from it (the disentanglement literature trains on every image)."""
    rng = np.random.default_rng(cfg.split_seed)
    if cfg.n_train is None:
        return np.arange(N_IMAGES), rng.choice(N_IMAGES, cfg.n_test, replace=False)
    if cfg.n_train + cfg.n_test > N_IMAGES:
        raise DataError(f"datasets.dsprites: n_train + n_test = {cfg.n_train + cfg.n_test} "
                        f"exceeds the {N_IMAGES} images of the grid")
    chosen = rng.choice(N_IMAGES, cfg.n_train + cfg.n_test, replace=False)
    return np.sort(chosen[:cfg.n_train]), chosen[cfg.n_train:]


def prepare(cfg: DSpritesConfig, raw_dir: Path, out_dir: Path) -> dict:
    images = Images(raw_dir)
    train_idx, test_idx = split_indices(cfg)
    f_train, f_test = index_to_factors(train_idx), index_to_factors(test_idx)
    x_train = images(f_train)[:, None]   # (N, 1, 64, 64)
    x_test = images(f_test)[:, None]
    meta = {"dataset": "dsprites", "source": images.source, "max_value": 1,
            "factor_names": list(FACTOR_NAMES), "factor_sizes": list(FACTOR_SIZES),
            "factor_values": FACTOR_VALUES, "ground_truth_factors": True,
            "description": "dSprites-compatible (procedural geometry, see vaebench.data.dsprites)"
            if images.source == "procedural" else "dSprites (original file)"}
    return save_prepared(out_dir, x_train=x_train, x_test=x_test, factors_train=f_train,
                         factors_test=f_test, meta=meta, binarize_seed=cfg.binarize_seed)
