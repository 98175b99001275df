"""TD-VAE: the objective, filtering beliefs, jumpy rollouts, and the train stage on
moving sprites (metrics and the rollout figure)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import kl_divergence

from vaebench.config import ConfigError
from vaebench.data import moving_sprites as ms
from vaebench.data import prepare_stage
from vaebench.models import build_model, validate_model_config
from vaebench.checkpoints import load_checkpoint
from vaebench.train import train_stage

SEQ = ms.MovingSpritesConfig(n_train=8, n_test=4, seq_len=10, image_size=12, sprite_size=4)


def _model(**kw):
    block = {"family": "tdvae", "dataset": "moving_sprites", "backbone": "mlp",
             "hidden": [32], "latent_dim": 4, "frame_dim": 16, "belief_dim": 16,
             "net_hidden": 16, "max_jump": 3, "eval_context": 3, "eval_horizons": [1, 2, 5],
             **kw}
    return build_model(validate_model_config("m", block), (SEQ.seq_len, 12, 12))


def _sequences(n=32, seed=0) -> torch.Tensor:
    state = ms.initial_states(SEQ, n, np.random.default_rng(seed))
    return torch.from_numpy(ms.render(SEQ, ms.simulate(SEQ, state)[0])).float()


def test_objective_terms_are_the_td_vae_loss():
    torch.manual_seed(0)
    model = _model()
    x = _sequences(6)
    beliefs = model.beliefs(x)
    t1, jump = torch.tensor([[0, 2, 5, 1, 6, 3]]), torch.tensor([[1, 3, 2, 3, 3, 1]])
    torch.manual_seed(1)
    terms = model.td_terms(x, beliefs, t1, jump)
    # redo the sampling by hand with the same noise
    torch.manual_seed(1)
    b1, b2 = beliefs[torch.arange(6), t1[0]], beliefs[torch.arange(6), t1[0] + jump[0]]
    pb2 = model.p_belief(b2)
    z2 = pb2.rsample()
    qs = model.q_smoothing(z2, b1, b2)
    z1 = qs.rsample()
    x2 = x[torch.arange(6), t1[0] + jump[0]].unsqueeze(1)
    expected = (model.p_frame(z2).log_prob(x2) + model.p_belief(b1).log_prob(z1)
                + model.p_transition(z1, jump[0]).log_prob(z2) - pb2.log_prob(z2)
                - qs.log_prob(z1))
    kl = kl_divergence(qs, model.p_belief(b1))
    # the sampled -log q + log p_B(z_t1) is replaced by its expectation, -KL, in closed form
    sampled_kl = qs.log_prob(z1) - model.p_belief(b1).log_prob(z1)
    assert torch.allclose(terms["kl_smoothing"], kl, atol=1e-5)
    assert torch.allclose(terms["td_elbo"], expected + sampled_kl - kl, atol=1e-4)
    assert torch.allclose(terms["td_elbo"],
                          -(terms["recon"] + terms["kl_smoothing"] + terms["transition"]))


def test_loss_is_finite_and_decreases_on_a_tiny_run():
    torch.manual_seed(0)
    model = _model(pairs_per_sequence=4)
    x = _sequences(32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        out = model.loss(x, step)
        assert torch.isfinite(out.loss) and all(torch.isfinite(v) for v in out.terms.values())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 10


def test_beliefs_are_filtering_they_never_see_the_future():
    torch.manual_seed(0)
    model = _model()
    x = _sequences(3)
    changed = x.clone()
    changed[:, 6] = 1 - changed[:, 6]
    b, b_changed = model.beliefs(x), model.beliefs(changed)
    assert torch.equal(b[:, :6], b_changed[:, :6])
    assert not torch.allclose(b[:, 6:], b_changed[:, 6:])


def test_transition_sees_the_jump_only_when_asked():
    torch.manual_seed(0)
    z = torch.randn(5, 4)
    with_jump, without = _model(), _model(jump_input=False)
    assert not torch.allclose(with_jump.p_transition(z, 1).mean, with_jump.p_transition(z, 3).mean)
    assert torch.equal(without.p_transition(z, 1).mean, without.p_transition(z, 3).mean)


def test_rollouts_jump_at_most_max_jump_and_predict_frames(monkeypatch):
    torch.manual_seed(0)
    model = _model()
    jumps = []
    original = model.p_transition
    monkeypatch.setattr(model, "p_transition", lambda z, d: jumps.append(d) or original(z, d))
    pred = model.predict(_sequences(4), context=3, horizons=[1, 2, 5], n_samples=6)
    assert pred.shape == (3, 4, 12, 12) and ((pred >= 0) & (pred <= 1)).all()
    assert jumps == [1, 2, 3, 2]                      # h = 5 with max_jump 3: 3 + 2


def test_sequence_interface_encode_decode_reconstruct():
    torch.manual_seed(0)
    model = _model()
    x = _sequences(2)
    q = model.encode(x)
    assert q.mean.shape == (2, SEQ.seq_len * 4) == (2, model.code_dim)
    # the belief of step t is that of the prefix x_1..x_t
    assert torch.allclose(q.mean.view(2, SEQ.seq_len, 4)[:, 4],
                          model.p_belief(model.beliefs(x[:, :5])[:, -1]).mean, atol=1e-6)
    assert model.decode(q.mean).log_prob(x).shape == (2,)
    assert model.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("kw, match", [
    ({"max_jump": 10}, "max_jump"),
    ({"eval_context": 6, "eval_horizons": [5]}, "eval_context"),
])
def test_settings_that_do_not_fit_the_sequences_are_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        _model(**kw)


@pytest.mark.slow   # prepares moving sprites and runs the train stage
def test_train_stage_on_moving_sprites_reports_prediction_errors(tiny_config, tmp_path):
    data_dir = tmp_path / "moving_sprites"
    prepare_stage(tiny_config, "moving_sprites", tmp_path / "raw", data_dir)
    metrics = train_stage(tiny_config, "moving_sprites_tdvae", data_dir, tmp_path / "models",
                          tmp_path / "metrics.json", tmp_path / "plots", tmp_path / "figures")
    assert (tmp_path / "figures" / "rollouts.png").read_bytes()[:4] == b"\x89PNG"
    diag = metrics["diagnostics"]
    horizons = tiny_config.models["moving_sprites_tdvae"].eval_horizons
    for h in horizons:
        assert 0 <= diag[f"pred_mse_h{h}"] <= 1 and 0 <= diag[f"copy_mse_h{h}"] <= 1
    assert np.isfinite(diag["td_elbo_step"]) and diag["recon_step"] > 0
    model, _ = load_checkpoint(tmp_path / "models" / "seed0.pt")
    x = torch.zeros(2, *model.image_shape)
    assert model.predict(x, 4, [1], 2).shape == (1, 2, *model.image_shape[1:])
