"""Sequence evaluation: prediction errors and baselines in closed form, the rollout figure."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vaebench.models.tdvae_eval import (copy_last_mse, marginal_mse, prediction_mse,
                                        save_rollout_figure, sequence_metrics)
from vaebench.models import build_model, validate_model_config


def _moving_square(n=3, t=8, size=10, side=2, speed=2):
    """Squares moving right by ``speed`` pixels a frame, never overlapping their past."""
    x = np.zeros((n, t, size, size))
    for k in range(t):
        x[:, k, 4:4 + side, k * speed % (size - side):k * speed % (size - side) + side] = 1
    return x


def test_perfect_prediction_scores_zero_and_copy_last_pays_twice_the_sprite():
    x = _moving_square(t=4, size=16, side=2, speed=3)
    horizons = [1, 2]
    truth = np.stack([x[:, 1 + h] for h in horizons])
    assert prediction_mse(truth, x, context=2, horizons=horizons) == {1: 0.0, 2: 0.0}
    # the copied square is wrong where it was and where it should be: 2 * side^2 pixels
    assert copy_last_mse(x, 2, horizons) == pytest.approx({1: 8 / 256, 2: 8 / 256})


def test_copy_last_is_perfect_on_static_sequences_and_marginal_is_the_pixel_variance():
    rng = np.random.default_rng(0)
    frames = (rng.random((50, 1, 6, 6)) < 0.3).astype(float)
    x = np.repeat(frames, 5, axis=1)                          # nothing moves
    assert copy_last_mse(x, 2, [1, 3]) == {1: 0.0, 3: 0.0}
    p = x[:, 3].mean(0)
    assert marginal_mse(x, 2, [1])[1] == pytest.approx(float((p * (1 - p)).mean()))


def test_horizons_beyond_the_sequence_are_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        copy_last_mse(_moving_square(t=5), 3, [3])


@pytest.fixture
def model():
    torch.manual_seed(0)
    block = {"family": "tdvae", "dataset": "moving_sprites", "backbone": "mlp", "hidden": [16],
             "latent_dim": 2, "frame_dim": 8, "belief_dim": 8, "net_hidden": 8, "max_jump": 2,
             "eval_context": 2, "eval_horizons": [1, 3], "eval_samples": 2}
    return build_model(validate_model_config("m", block), (6, 10, 10))


def test_sequence_metrics_report_every_horizon_beside_the_baselines(model):
    x = torch.from_numpy(_moving_square(n=4, t=6)).float()
    out = sequence_metrics(model, x, 2, [3, 1], n_samples=2, batch_size=3)
    for h in (1, 3):
        assert {f"pred_mse_h{h}", f"copy_mse_h{h}", f"marginal_mse_h{h}"} <= set(out)
        assert out[f"copy_mse_h{h}"] == pytest.approx(copy_last_mse(x.numpy(), 2, [h])[h])
    assert {"td_elbo_step", "recon_step", "kl_smoothing_step", "transition_step"} <= set(out)
    assert out["td_elbo_step"] == pytest.approx(
        -(out["recon_step"] + out["kl_smoothing_step"] + out["transition_step"]), rel=1e-5)


def test_rollout_figure_is_a_png(model, tmp_path):
    x = torch.from_numpy(_moving_square(n=3, t=6)).float()
    path = save_rollout_figure(model, x, tmp_path / "fig" / "rollout.png", n_sequences=2)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert not list((tmp_path / "fig").glob(".*tmp"))        # written atomically


def test_copy_gain_is_the_paired_difference_of_the_two_errors():
    from vaebench.models.tdvae_eval import copy_gain
    rng = np.random.default_rng(1)
    x = rng.random((40, 6, 5, 5))
    horizons = [1, 3]
    pred = np.stack([x[:, 1 + h] + rng.normal(0, 0.1, x[:, 0].shape) for h in horizons])
    gain = copy_gain(pred, x, context=2, horizons=horizons)
    copy, model = copy_last_mse(x, 2, horizons), prediction_mse(pred, x, 2, horizons)
    for h in horizons:
        assert gain[h][0] == pytest.approx(copy[h] - model[h])
        per_seq = (((x[:, 1] - x[:, 1 + h]) ** 2) - ((pred[horizons.index(h)] - x[:, 1 + h]) ** 2)
                   ).reshape(40, -1).mean(1)
        assert gain[h][1] == pytest.approx(per_seq.std(ddof=1) / np.sqrt(40))
