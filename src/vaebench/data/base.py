"""The prepared-data format shared by every dataset, and its loader.

``prepare@<dataset>`` writes ``data/prepared/<dataset>/`` with
``train.npz``, ``test.npz`` (arrays ``x`` uint8 (N, C, H, W), ``factors`` int64
(N, F); the test file also holds ``x_binary``, the test set binarised once with
a fixed seed) and ``meta.json`` (shapes, factor names and sizes, the source, the
SHA-256 of both array files). Binary datasets are stored bit-packed along the
last axis. Test rows are stored in a seeded random order (never sorted by label
or factor), so the first n test rows that a stage evaluates are an unbiased sample. Loading checks everything it can and names the file when it fails.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vaebench import io

FORMAT_VERSION = 1
# The keys of meta.json that loading and the stages read.
META_KEYS = ("dataset", "format_version", "packed", "image_shape", "n_train", "n_test",
             "max_value", "factor_names", "factor_sizes", "sha256")


class DataError(RuntimeError):
    """A missing, truncated or mis-shaped data file (the message names the file)."""


# What a prepared-data folder holds (the stage replaces only such a folder).
PREPARED_FILES = ("train.npz", "test.npz", "meta.json")


def save_prepared(out_dir: Path, *, x_train: np.ndarray, x_test: np.ndarray,
                  factors_train: np.ndarray, factors_test: np.ndarray,
                  meta: dict, binarize_seed: int) -> dict:
    """Write one prepared dataset atomically; return its ``meta``.

    ``x_*`` are uint8 (N, C, H, W) with values in [0, ``meta['max_value']``].
    """
    max_value = int(meta["max_value"])
    rng = np.random.default_rng(binarize_seed)
    if max_value == 1:
        x_test_binary = x_test
    else:  # fixed binarisation of the test set: Bernoulli(pixel intensity)
        x_test_binary = (rng.random(x_test.shape) < x_test / max_value).astype(np.uint8)
    packed = max_value == 1
    pack = (lambda a: np.packbits(a, axis=-1)) if packed else (lambda a: a)
    with io.atomic_dir(out_dir, PREPARED_FILES) as tmp:
        np.savez(tmp / "train.npz", x=pack(x_train), factors=factors_train.astype(np.int64))
        np.savez(tmp / "test.npz", x=pack(x_test), x_binary=np.packbits(x_test_binary, axis=-1),
                 factors=factors_test.astype(np.int64))
        meta = {**meta, "format_version": FORMAT_VERSION, "packed": packed,
                "image_shape": list(x_train.shape[1:]),
                "n_train": int(len(x_train)), "n_test": int(len(x_test)),
                "binarize_seed": binarize_seed,
                "sha256": {f: io.sha256_file(tmp / f) for f in ("train.npz", "test.npz")}}
        io.write_json(tmp / "meta.json", meta)
    return meta


@dataclass
class PreparedData:
    """A prepared dataset held as whole tensors on one device.

    Minibatches are sliced from these tensors (no per-item DataLoader); images
    stay uint8 until a batch is taken, so even full dSprites fits on a GPU.
    """

    name: str
    meta: dict
    x_train: torch.Tensor          # (N, C, H, W) uint8
    x_test: torch.Tensor           # (M, C, H, W) uint8
    x_test_binary: torch.Tensor    # (M, C, H, W) uint8 in {0, 1}
    factors_train: torch.Tensor    # (N, F) int64
    factors_test: torch.Tensor     # (M, F) int64
    max_value: float = field(init=False)

    def __post_init__(self):
        self.max_value = float(self.meta["max_value"])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["image_shape"])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def train_batch(self, idx: torch.Tensor, binarize: bool,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Float batch in [0, 1]; with ``binarize`` resampled as Bernoulli(intensity)."""
        x = self.x_train[idx].float() / self.max_value
        if binarize and self.max_value != 1:
            x = torch.bernoulli(x, generator=generator)
        return x

    def test_inputs(self, binarize: bool) -> torch.Tensor:
        """The whole test set as floats: the fixed binarisation, or the intensities."""
        if binarize:
            return self.x_test_binary.float()
        return self.x_test.float() / self.max_value


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: file not found; run `dvc repro prepare@{path.parent.name}`")
    try:
        with np.load(path) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}; expected {list(keys)}")
            return {k: npz[k] for k in keys}
    except DataError:
        raise
    except Exception as err:  # zipfile.BadZipFile, EOFError, ValueError ...
        raise DataError(f"{path}: cannot be read ({type(err).__name__}: {err}); the file is "
                        f"truncated or corrupt -- re-run `dvc repro -f prepare@{path.parent.name}`"
                        ) from None


def load_prepared(directory: str | Path, device: torch.device | str = "cpu",
                  verify: bool = True) -> PreparedData:
    """Load ``data/prepared/<name>/`` onto ``device``, checking checksums and shapes."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: file not found; run `dvc repro prepare@{directory.name}`")
    try:
        meta = io.read_json(meta_path)
    except ValueError as err:
        raise DataError(f"{meta_path}: not valid JSON ({err})") from None
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DataError(f"{meta_path}: missing key(s) {missing} of a prepared dataset; "
                        f"re-run `dvc repro -f prepare@{directory.name}`")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{meta_path}: format_version {meta.get('format_version')!r}, "
                        f"expected {FORMAT_VERSION}; re-run prepare")
    if verify:
        for fname, expected in meta["sha256"].items():
            path = directory / fname
            if path.is_file() and io.sha256_file(path) != expected:
                raise DataError(f"{path}: SHA-256 does not match {meta_path}; the file was "
                                f"modified or truncated -- re-run `dvc repro -f prepare@{directory.name}`")
    train = _load_npz(directory / "train.npz", ("x", "factors"))
    test = _load_npz(directory / "test.npz", ("x", "x_binary", "factors"))
    shape = tuple(meta["image_shape"])
    width = shape[-1]

    def unpack(a: np.ndarray, packed: bool) -> np.ndarray:
        return np.unpackbits(a, axis=-1, count=width) if packed else a

    arrays = {
        "x_train": unpack(train["x"], meta["packed"]),
        "x_test": unpack(test["x"], meta["packed"]),
        "x_test_binary": unpack(test["x_binary"], True),
    }
    for key, n in (("x_train", meta["n_train"]), ("x_test", meta["n_test"]),
                   ("x_test_binary", meta["n_test"])):
        if arrays[key].shape != (n, *shape):
            raise DataError(f"{directory}: {key} has shape {arrays[key].shape}, "
                            f"expected {(n, *shape)} from meta.json")
    n_factors = len(meta["factor_names"])
    for key, arr, n in (("factors_train", train["factors"], meta["n_train"]),
                        ("factors_test", test["factors"], meta["n_test"])):
        if arr.shape != (n, n_factors):
            raise DataError(f"{directory}: {key} has shape {arr.shape}, expected {(n, n_factors)}")
        arrays[key] = arr
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}
    return PreparedData(name=directory.name, meta=meta, **tensors)
