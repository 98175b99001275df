"""Attribute vectors (White 2016, arXiv:1609.04468) and the factor classifier that judges them.

Hand-made models whose answer is known: codes = the factors themselves, and a
decoder that is the identity (codes read back by rounding) or the dSprites
renderer (images read back by the trained factor classifier). Adding the mean
code difference must move the factor to the target value (~100% hits); a zero
vector must leave it at the source (~0% hits).
"""
from __future__ import annotations

import numpy as np
import pytest

from vaebench.sections.disentangle import FactorClassifierConfig
from vaebench.data import dsprites
from vaebench.evaluate import attribute_vectors as av
from vaebench.evaluate.factor_classifier import train_factor_classifier, within

SIZES = dsprites.FACTOR_SIZES
SHAPE, SCALE, ORIENTATION, POSX, POSY = range(5)


def identity_codes(factors):                      # the ideal encoder: codes = factors
    return factors.astype(float)


def round_to_grid(codes):                         # the inverse of identity_codes
    return np.clip(np.rint(codes), 0, np.asarray(SIZES) - 1).astype(np.int64)


def test_conditioned_factors_hold_the_fixed_factor_and_vary_the_others():
    rng = np.random.default_rng(0)
    f = av.conditioned_factors(SIZES, 5000, rng, {SCALE: 4, POSX: 30})
    assert f.shape == (5000, 5)
    assert (f[:, SCALE] == 4).all() and (f[:, POSX] == 30).all()
    for k in (SHAPE, ORIENTATION, POSY):          # the others stay uniform over their range
        assert set(np.unique(f[:, k])) == set(range(SIZES[k]))
    # the images drawn for them show the fixed factor: same scale, same column
    img = dsprites.render(f[:50])
    area = img.reshape(50, -1).sum(1)
    same_shape = f[:50, SHAPE] == f[0, SHAPE]
    assert np.ptp(area[same_shape]) <= 0.25 * area[same_shape].mean()  # rotation only
    cols = np.argwhere(img.any(1))[:, 1]
    assert cols.min() > 32                        # posX 30 of 31: right half


@pytest.mark.parametrize("fixed", [{SCALE: 6}, {5: 0}, {SHAPE: -1}])
def test_conditioned_factors_reject_impossible_values(fixed):
    with pytest.raises(ValueError, match="cannot fix factor"):
        av.conditioned_factors(SIZES, 3, np.random.default_rng(0), fixed)


def test_attribute_vector_is_the_mean_code_difference():
    a = np.array([[0.0, 1.0], [2.0, 3.0]])
    b = np.array([[4.0, 4.0], [6.0, 8.0], [5.0, 9.0]])
    np.testing.assert_allclose(av.attribute_vector(a, b), [4.0, 5.0])


@pytest.mark.parametrize("factor,source,target", [(SCALE, 0, 5), (SHAPE, 0, 2), (POSX, 0, 31),
                                                  (POSY, 31, 3)])
def test_identity_model_hits_the_target_and_a_zero_vector_does_not(factor, source, target):
    kw = dict(n_vector=400, n_apply=300, tolerance=0)
    hit, ex = av.evaluate_attribute(identity_codes, lambda c: c, round_to_grid, SIZES, factor,
                                    source, target, rng=np.random.default_rng(1), **kw)
    # other factors' means differ only by sampling noise; the moved one by exactly target - source
    assert hit["hit_rate"] == 1.0 and hit["source_rate"] == 0.0
    assert hit["recon_source_rate"] == 1.0 and hit["baseline_hit_rate"] == 0.0
    vector = ex["vector"]
    assert vector[factor] == target - source   # the held column moves exactly
    others = np.delete(vector, factor)          # the rest: sampling noise, sd <= sqrt(2 var / n)
    assert np.abs(others).max() < 4 * np.sqrt(2 * (40**2 - 1) / 12 / 400)
    assert hit["vector_norm"] == pytest.approx(np.linalg.norm(vector))
    zero, _ = av.evaluate_attribute(identity_codes, lambda c: c, round_to_grid, SIZES, factor,
                                    source, target, rng=np.random.default_rng(1),
                                    vector_scale=0.0, **kw)
    assert zero["hit_rate"] == 0.0 and zero["source_rate"] == 1.0


def test_half_a_vector_lands_halfway():
    res, ex = av.evaluate_attribute(identity_codes, lambda c: c, round_to_grid, SIZES, POSX, 0, 30,
                                    n_vector=500, n_apply=200, rng=np.random.default_rng(2),
                                    vector_scale=0.5)
    assert res["hit_rate"] == 0.0 and res["source_rate"] == 0.0
    assert (ex["read_shifted"] == 15).all()


def test_source_equal_to_target_is_an_error():
    with pytest.raises(ValueError, match="must differ"):
        av.evaluate_attribute(identity_codes, lambda c: c, round_to_grid, SIZES, SCALE, 2, 2,
                              n_vector=2, n_apply=2, rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def judge():
    """A factor classifier trained on rendered dSprites (small: a few seconds)."""
    cfg = FactorClassifierConfig(n_train=4000, n_test=1000, epochs=10)
    return train_factor_classifier(dsprites.render, SIZES, cfg, np.random.default_rng(0))


@pytest.mark.slow   # trains the factor classifier (module fixture `judge`)
def test_factor_classifier_reads_shape_scale_and_position_off_held_out_images(judge):
    clf, predicted, truth = judge
    assert predicted.shape == truth.shape == (1000, 5)
    acc = [within(predicted[:, j], truth[:, j]).mean() for j in range(5)]
    assert acc[SHAPE] > 0.95 and acc[SCALE] > 0.9
    for j in (POSX, POSY):   # 32 positions 1.3 px apart: judged within 2 classes
        assert within(predicted[:, j], truth[:, j], 2).mean() > 0.9
    # and it is a real classifier: far above chance (1/3, 1/6, 1/32)
    assert acc[SHAPE] > 0.5 and acc[POSX] > 3 / 32


@pytest.mark.slow   # trains the factor classifier (module fixture `judge`)
@pytest.mark.parametrize("factor,source,target,tol", [(SCALE, 0, 5, 0), (SHAPE, 0, 2, 0),
                                                      (POSX, 0, 31, 2)])
def test_renderer_model_judged_by_the_classifier(judge, factor, source, target, tol):
    clf, _, _ = judge

    def decode(codes):                            # the renderer as the decoder
        return dsprites.render(round_to_grid(codes)).astype(float)

    def classify(images):
        import torch
        return clf.predict(torch.as_tensor(images, dtype=torch.float32)[:, None])

    kw = dict(n_vector=200, n_apply=200, tolerance=tol)
    hit, ex = av.evaluate_attribute(identity_codes, decode, classify, SIZES, factor, source,
                                    target, rng=np.random.default_rng(3), **kw)
    zero, _ = av.evaluate_attribute(identity_codes, decode, classify, SIZES, factor, source,
                                    target, rng=np.random.default_rng(3), vector_scale=0.0, **kw)
    assert hit["hit_rate"] >= 0.85 and zero["hit_rate"] <= 0.05
    assert zero["recon_source_rate"] >= 0.85
    assert ex["shifted"].shape == (200, 64, 64)


def test_attribute_figure_is_written(tmp_path):
    tiles = np.random.default_rng(0).random((2, 4, 64, 64))
    path = tmp_path / "attribute_vectors.png"
    av.save_attribute_figure(path, [{"name": "a", "tiles": tiles, "caption": "x"},
                                    {"name": "b", "tiles": tiles, "caption": "y"}], "title")
    import matplotlib.image
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200
