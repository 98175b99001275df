"""The dSprites-compatible generator: factor grid, index order, determinism, geometry."""
from __future__ import annotations

import numpy as np
import pytest

from vaebench.data import dsprites
from vaebench.data.base import DataError, load_prepared


def test_full_grid_has_every_combination_exactly_once():
    cfg = dsprites.DSpritesConfig(n_train=None, n_test=10)
    train_idx, test_idx = dsprites.split_indices(cfg)
    assert len(train_idx) == 737_280 == dsprites.N_IMAGES == np.prod(dsprites.FACTOR_SIZES)
    factors = dsprites.index_to_factors(train_idx)
    assert len(np.unique(factors, axis=0)) == 737_280
    assert (factors.max(0) + 1).tolist() == list(dsprites.FACTOR_SIZES)


def test_index_order_matches_the_original_bases():
    # index = sum(latents * [245760, 40960, 1024, 32, 1]); posY fastest
    assert dsprites.index_to_factors(np.array([1]))[0].tolist() == [0, 0, 0, 0, 1]
    assert dsprites.index_to_factors(np.array([32]))[0].tolist() == [0, 0, 0, 1, 0]
    assert dsprites.index_to_factors(np.array([245760]))[0].tolist() == [1, 0, 0, 0, 0]
    assert dsprites.index_to_factors(np.array([737279]))[0].tolist() == [2, 5, 39, 31, 31]


def test_index_factor_round_trip():
    idx = np.random.default_rng(0).integers(0, dsprites.N_IMAGES, 5000)
    assert np.array_equal(dsprites.factors_to_index(dsprites.index_to_factors(idx)), idx)
    with pytest.raises(ValueError, match="out of range"):
        dsprites.index_to_factors(np.array([dsprites.N_IMAGES]))


def test_factor_values_follow_the_documentation():
    v = dsprites.FACTOR_VALUES
    assert np.allclose(v["scale"], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert np.allclose(v["orientation"], np.linspace(0, 2 * np.pi, 40))
    assert np.allclose(v["posX"], np.linspace(0, 1, 32)) and np.allclose(v["posY"], v["posX"])


def test_render_is_binary_inside_the_frame_and_shaped_by_the_factors():
    f = np.array([[s, sc, o, x, y] for s in range(3) for sc in (0, 5) for o in (0, 7)
                  for x in (0, 31) for y in (0, 31)])
    img = dsprites.render(f)
    assert img.shape == (len(f), 64, 64) and img.dtype == np.uint8
    assert set(np.unique(img)) <= {0, 1}
    area = img.reshape(len(img), -1).sum(1)
    assert (area > 0).all()
    # no sprite is cut by the frame: the outermost ring of pixels is always empty
    ring = np.ones((64, 64), bool)
    ring[1:-1, 1:-1] = False
    assert img[:, ring].sum() == 0
    # scale 1.0 draws more pixels than scale 0.5, for every shape
    small, large = dsprites.render(np.array([[s, 0, 0, 16, 16] for s in range(3)])), \
        dsprites.render(np.array([[s, 5, 0, 16, 16] for s in range(3)]))
    assert (large.reshape(3, -1).sum(1) > 2 * small.reshape(3, -1).sum(1)).all()
    # the square at scale 1 is 16 x 16 pixels, unrotated
    assert large[0].sum() == 256
    # posX moves right, posY moves down
    left, right = dsprites.render(np.array([[0, 3, 0, 0, 16], [0, 3, 0, 31, 16]]))
    assert np.nonzero(left)[1].mean() < 20 < 44 < np.nonzero(right)[1].mean()
    top, bottom = dsprites.render(np.array([[0, 3, 0, 16, 0], [0, 3, 0, 16, 31]]))
    assert np.nonzero(top)[0].mean() < 20 < 44 < np.nonzero(bottom)[0].mean()
    # the three shapes differ
    assert len({large[i].tobytes() for i in range(3)}) == 3


def _render_by_definition(factors: np.ndarray) -> np.ndarray:
    """The documented geometry, written out directly: every shape's inequality on every
    pixel, then the image's own shape selected (what render computed before it
    evaluated only the image's own shape)."""
    values = {k: np.asarray(v) for k, v in dsprites.FACTOR_VALUES.items()}
    scale = values["scale"][factors[:, 1]][:, None, None]
    theta = values["orientation"][factors[:, 2]][:, None, None]
    cx = (12.0 + 40.0 * values["posX"][factors[:, 3]])[:, None, None]
    cy = (12.0 + 40.0 * values["posY"][factors[:, 4]])[:, None, None]
    centres = np.arange(64) + 0.5
    dx = (centres[None, None, :] - cx) / (8.0 * scale)
    dy = (cy - centres[None, :, None]) / (8.0 * scale)
    a = np.cos(theta) * dx + np.sin(theta) * dy
    b = -np.sin(theta) * dx + np.cos(theta) * dy
    u, v = 1.2 * a, 1.2 * (b - 0.1)
    inside = [np.maximum(np.abs(a), np.abs(b)) <= 1.0, a ** 2 + (b / 0.5) ** 2 <= 1.0,
              (u ** 2 + v ** 2 - 1.0) ** 3 - u ** 2 * v ** 3 <= 0.0]
    shape = factors[:, 0][:, None, None]
    return np.where(shape == 0, inside[0], np.where(shape == 1, inside[1], inside[2]))


def test_render_draws_exactly_the_documented_geometry():
    rng = np.random.default_rng(7)
    factors = np.stack([rng.integers(s, size=3000) for s in dsprites.FACTOR_SIZES], axis=1)
    factors[:3, 0] = [0, 1, 2]                          # every shape, also in a tiny chunk
    expected = _render_by_definition(factors).astype(np.uint8)
    for chunk, n in ((1, 40), (7, 400), (256, 3000)):
        assert np.array_equal(dsprites.render(factors[:n], chunk=chunk), expected[:n]), chunk


def test_render_rejects_bad_factors():
    with pytest.raises(ValueError, match="out of range"):
        dsprites.render(np.array([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        dsprites.render(np.zeros((2, 4), int))


def test_prepare_is_deterministic_and_checksummed(tmp_path):
    cfg = dsprites.DSpritesConfig(n_train=300, n_test=50, split_seed=3)
    m1 = dsprites.prepare(cfg, tmp_path / "raw", tmp_path / "a")
    m2 = dsprites.prepare(cfg, tmp_path / "raw", tmp_path / "b")
    assert m1["sha256"] == m2["sha256"]
    assert (tmp_path / "a" / "train.npz").read_bytes() == (tmp_path / "b" / "train.npz").read_bytes()
    m3 = dsprites.prepare(dsprites.DSpritesConfig(n_train=300, n_test=50, split_seed=4),
                          tmp_path / "raw", tmp_path / "c")
    assert m3["sha256"] != m1["sha256"]
    data = load_prepared(tmp_path / "a")
    assert data.x_train.shape == (300, 1, 64, 64) and data.x_test.shape == (50, 1, 64, 64)
    # the stored images are the rendered images of the stored factors
    assert np.array_equal(data.x_train[:, 0].numpy(), dsprites.render(data.factors_train.numpy()))
    assert m1["source"] == "procedural"
    # train and test images are disjoint
    tr = set(dsprites.factors_to_index(data.factors_train.numpy()))
    te = set(dsprites.factors_to_index(data.factors_test.numpy()))
    assert not tr & te
    # test rows keep their random draw order, so any prefix is an unbiased sample
    idx = dsprites.factors_to_index(data.factors_test.numpy())
    assert (np.diff(idx) < 0).any()
    assert len(set(data.factors_test[:20, 0].tolist())) == 3   # all three shapes early on


def test_corrupt_and_truncated_files_are_clear_errors(tmp_path):
    dsprites.prepare(dsprites.DSpritesConfig(n_train=40, n_test=10), tmp_path, tmp_path / "d")
    path = tmp_path / "d" / "train.npz"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"train\.npz: SHA-256 does not match"):
        load_prepared(tmp_path / "d")
    with pytest.raises(DataError, match=r"train\.npz: cannot be read.*truncated or corrupt"):
        load_prepared(tmp_path / "d", verify=False)
    path.unlink()
    with pytest.raises(DataError, match=r"train\.npz: file not found"):
        load_prepared(tmp_path / "d", verify=False)
    with pytest.raises(DataError, match=r"meta\.json: file not found"):
        load_prepared(tmp_path / "nothing")


def test_original_file_with_wrong_shape_is_rejected(tmp_path):
    np.savez(tmp_path / dsprites.ORIGINAL_FILE, imgs=np.zeros((10, 64, 64), np.uint8))
    with pytest.raises(DataError, match=r"'imgs' has shape \(10, 64, 64\), expected \(737280"):
        dsprites.Images(tmp_path)
    (tmp_path / dsprites.ORIGINAL_FILE).write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot be read"):
        dsprites.Images(tmp_path)
