"""Moving sprites: the bouncing dynamics, the frames, determinism, the prepared format."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from vaebench import io
from vaebench.data import DATASETS, load_prepared
from vaebench.data import moving_sprites as ms


def _cfg(**kw):
    base = dict(n_train=40, n_test=10, seq_len=30, image_size=16, sprite_size=3, max_speed=3)
    return ms.MovingSpritesConfig(**{**base, **kw})


def _trajectories(cfg, n=200, seed=0):
    state = ms.initial_states(cfg, n, np.random.default_rng(seed))
    return state, *ms.simulate(cfg, state)


def test_speed_is_conserved_and_sprites_stay_in_bounds():
    cfg = _cfg(n_sprites=2)
    state, pos, vel = _trajectories(cfg)
    assert pos.shape == vel.shape == (200, cfg.seq_len, 2, 2)
    room = cfg.image_size - cfg.sprite_size
    assert pos.min() >= 0 and pos.max() <= room
    speed = np.abs(vel)                                   # per axis, hence |v| too
    assert (speed == speed[:, :1]).all()
    assert (speed >= 1).all() and (speed <= cfg.max_speed).all()
    # the sequences do bounce: many velocity components change sign somewhere
    flips = (np.sign(vel[:, 1:]) != np.sign(vel[:, :-1])).any(axis=1)
    assert flips.mean() > 0.5


def test_each_step_is_a_move_then_a_reflection_at_the_walls():
    cfg = _cfg()
    _, pos, vel = _trajectories(cfg, n=100, seed=1)
    room = cfg.image_size - cfg.sprite_size
    moved = pos[:, :-1] + vel[:, :-1]
    bounced = (moved < 0) | (moved > room)
    expected = np.where(moved < 0, -moved, np.where(moved > room, 2 * room - moved, moved))
    assert (pos[:, 1:] == expected).all()
    # the velocity flips exactly when the move left the frame
    assert (vel[:, 1:] == np.where(bounced, -vel[:, :-1], vel[:, :-1])).all()
    assert bounced.any()


def test_frames_show_each_square_at_its_position():
    cfg = _cfg()
    _, pos, _ = _trajectories(cfg, n=20)
    frames = ms.render(cfg, pos)
    s = cfg.sprite_size
    assert frames.shape == (20, cfg.seq_len, cfg.image_size, cfg.image_size)
    assert (frames.sum(axis=(2, 3)) == s * s).all()       # one sprite, never clipped
    n, t = 7, 11
    x, y = pos[n, t, 0]
    assert frames[n, t, y:y + s, x:x + s].all()


def test_overlapping_sprites_are_drawn_as_their_union():
    cfg = _cfg(n_sprites=2, seq_len=2)
    positions = np.array([[[[0, 0], [1, 1]]] * 2])       # (1, T=2, K=2, 2)
    frames = ms.render(cfg, positions)
    assert frames[0, 0].sum() == 2 * 9 - 4                # two 3x3 squares sharing 2x2


def test_prepare_is_deterministic_and_factors_determine_the_sequences(tmp_path):
    cfg = _cfg()
    meta_a = ms.prepare(cfg, tmp_path / "raw", tmp_path / "a")
    meta_b = ms.prepare(cfg, tmp_path / "raw", tmp_path / "b")
    meta_c = ms.prepare(_cfg(seed=1), tmp_path / "raw", tmp_path / "c")
    assert meta_a["sha256"] == meta_b["sha256"] != meta_c["sha256"]
    data = load_prepared(tmp_path / "a")
    assert data.x_train.shape == (40, cfg.seq_len, 16, 16)
    assert data.x_test.shape == (10, cfg.seq_len, 16, 16)
    assert data.factors_train.shape == (40, 4)
    assert meta_a["factor_names"] == ["x_0", "y_0", "vx_0", "vy_0"]
    # rebuild the first training sequence from its factors alone
    f = data.factors_train[:1].numpy().reshape(1, 1, 4).copy()
    f[..., 2:] -= cfg.max_speed
    pos, _ = ms.simulate(cfg, f)
    assert (ms.render(cfg, pos)[0] == data.x_train[0].numpy()).all()
    assert (data.test_inputs(binarize=True) == data.x_test.float()).all()
    assert io.read_json(tmp_path / "a" / "meta.json")["image_shape"] == [cfg.seq_len, 16, 16]


@pytest.mark.parametrize("bad, match", [
    ({"sprite_size": 16}, "smaller than image_size"),
    ({"max_speed": 14}, "room to move"),
    ({"seq_len": 1}, "seq_len"),
    ({"n_sprites": 0}, "n_sprites"),
])
def test_bad_geometry_is_an_error_naming_it(bad, match):
    with pytest.raises(ValidationError, match=match):
        _cfg(**bad)


def test_registered_and_configured_in_every_profile(raw_params):
    assert DATASETS["moving_sprites"] is ms
    assert "moving_sprites" in raw_params["datasets"]
    for profile in raw_params["profiles"].values():
        assert "moving_sprites" in profile["datasets"]
