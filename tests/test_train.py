"""The training loop: reproducibility, learning, checkpoints, devices, the stage's outputs."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from vaebench import io
from vaebench.devices import DeviceError, resolve_device
from vaebench.checkpoints import load_checkpoint
from vaebench.train import train_stage


def _train(cfg, name, tiny_data, tmp_path, tag="a"):
    out = tmp_path / tag
    metrics = train_stage(cfg, name, tiny_data / cfg.models[name].dataset, out / "models" / name,
                          out / "metrics.json", out / "plots" / name)
    return out, metrics


@pytest.mark.slow   # runs the train stage (every seed, figures, MLflow)
def test_same_seed_gives_bit_identical_checkpoints_and_another_seed_does_not(
        tiny_config, tiny_data, tmp_path):
    cfg = tiny_config.model_copy(update={"seeds": [0, 1]})
    a, _ = _train(cfg, "mnist_vae", tiny_data, tmp_path, "a")
    b, _ = _train(cfg, "mnist_vae", tiny_data, tmp_path, "b")
    ckpt = lambda root, s: root / "models" / "mnist_vae" / f"seed{s}.pt"  # noqa: E731
    assert io.sha256_file(ckpt(a, 0)) == io.sha256_file(ckpt(b, 0))
    assert io.sha256_file(ckpt(a, 1)) == io.sha256_file(ckpt(b, 1))
    assert io.sha256_file(ckpt(a, 0)) != io.sha256_file(ckpt(a, 1))


@pytest.mark.slow   # runs the train stage (every seed, figures, MLflow)
def test_conv_model_is_bit_identical_too(tiny_config, tiny_data, tmp_path):
    a, _ = _train(tiny_config, "dsprites_vae", tiny_data, tmp_path, "a")
    b, _ = _train(tiny_config, "dsprites_vae", tiny_data, tmp_path, "b")
    p = "models/dsprites_vae/seed0.pt"
    assert io.sha256_file(a / p) == io.sha256_file(b / p)


@pytest.mark.slow   # runs the train stage (every seed, figures, MLflow)
def test_training_lowers_the_loss_and_writes_curves_and_metrics(tiny_config, tiny_data, tmp_path):
    cfg = tiny_config.model_copy(update={"sections": {
        **tiny_config.sections,
        "train": tiny_config.train.model_copy(update={"epochs": 6})}})
    out, metrics = _train(cfg, "mnist_vae", tiny_data, tmp_path)
    with open(out / "plots" / "mnist_vae" / "seed0.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert {"train_loss", "test_loss", "train_kl", "test_elbo"} <= set(rows[0])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]) - 20
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["device"] == "cpu" and saved["n_params"] > 0
    assert saved["likelihood"] == "bernoulli" and saved["binarize"] is True
    assert saved["test"]["loss"] == pytest.approx(float(rows[-1]["test_loss"]), rel=1e-4)
    assert set(saved["seeds"]) == {"0"}


@pytest.mark.slow   # runs the train stage (every seed, figures, MLflow)
def test_a_reloaded_checkpoint_reproduces_the_metrics_the_stage_recorded(tiny_config, tiny_data,
                                                                          tmp_path):
    """The checkpoint is the model that was measured: rebuilt from the file alone (safe
    loading), the deterministic autoencoder gives the recorded test terms and, through its
    ex-post code density fitted after training, the recorded diagnostics."""
    from vaebench.data import load_prepared
    from vaebench.train import evaluate_terms
    name = "mnist_ae"
    out, metrics = _train(tiny_config, name, tiny_data, tmp_path)
    model, ckpt = load_checkpoint(out / "models" / name / "seed0.pt")
    mcfg = tiny_config.models[name]
    assert ckpt["config"] == json.loads(json.dumps(mcfg.model_dump()))
    assert (ckpt["model"], ckpt["seed"], ckpt["dataset"]) == (name, 0, "mnist")
    x = load_prepared(tiny_data / "mnist").test_inputs(mcfg.binarize)
    recorded = metrics["seeds"]["0"]
    terms = evaluate_terms(model, x, tiny_config.model_train(name).eval_batch_size, 0)
    assert terms.keys() == recorded["test"].keys()
    assert terms == pytest.approx(recorded["test"], rel=1e-5)
    assert recorded["diagnostics"], "the autoencoder records its ex-post diagnostics"
    with torch.no_grad():
        assert model.diagnostics(x) == pytest.approx(recorded["diagnostics"], rel=1e-5)
    resolved = json.loads((out / "models" / name / "config.json").read_text())
    assert resolved["model"]["family"] == "ae" and resolved["profile"] == "tiny"


def test_absent_devices_are_errors_not_fallbacks():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match=r"train\.device: 'cuda:0' was requested"):
            resolve_device("cuda:0", "train.device")
    else:
        with pytest.raises(DeviceError, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}", "train.device")
    if not torch.backends.mps.is_available():
        with pytest.raises(DeviceError, match="'mps' was requested"):
            resolve_device("mps")


def test_train_stage_fails_on_absent_device_before_loading_data(tiny_config, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    cfg = tiny_config.model_copy(update={"device": "cuda"})
    with pytest.raises(DeviceError):
        train_stage(cfg, "mnist_vae", tmp_path / "missing", tmp_path / "m", tmp_path / "j.json",
                    tmp_path / "p")
    assert not (tmp_path / "m").exists()


def test_missing_prepared_data_is_a_clear_error(tiny_config, tmp_path):
    from vaebench.data import DataError
    with pytest.raises(DataError, match=r"meta\.json: file not found; run `dvc repro prepare@mnist`"):
        train_stage(tiny_config, "mnist_vae", tmp_path / "mnist", tmp_path / "m",
                    tmp_path / "j.json", tmp_path / "p")


@pytest.mark.slow   # runs the train stage (every seed, figures, MLflow)
def test_stage_draws_reconstructions_and_samples(tiny_config, tiny_data, tmp_path):
    for name, expected in (("mnist_vae", {"reconstructions.png", "samples.png"}),
                           ("dsprites_vae", {"reconstructions.png", "samples.png"})):
        figures = tmp_path / "fig" / name
        train_stage(tiny_config, name, tiny_data / tiny_config.models[name].dataset,
                    tmp_path / name, tmp_path / f"{name}.json", tmp_path / f"p{name}", figures)
        assert {p.name for p in figures.iterdir()} >= expected
        for p in figures.iterdir():
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kl_warmup_ramps_the_kl_weight_linearly_then_holds_it_at_one(tiny_config, tiny_data):
    from vaebench.data import load_prepared
    from vaebench.models import build_model
    from vaebench.train import fit
    data = load_prepared(tiny_data / "mnist")
    model = build_model(tiny_config.models["mnist_beta_vae"], data.image_shape)
    weights, loss = [], model.loss

    def recording_loss(x, step):
        if model.training:                      # training steps, not the per-epoch evaluation
            weights.append(model.kl_weight_at(step))
        return loss(x, step)

    model.loss = recording_loss
    tcfg = tiny_config.train.model_copy(update={"kl_warmup_epochs": 2.0, "batch_size": 64})
    per_epoch = -(-len(data.x_train) // 64)
    fit(model, data, tcfg, epochs=3, seed=0, binarize=True)
    beta, warm = tiny_config.models["mnist_beta_vae"].kl_weight, 2 * per_epoch
    assert len(weights) == 3 * per_epoch
    assert weights[:warm] == pytest.approx([beta * (i + 1) / warm for i in range(warm)])
    assert weights[warm:] == pytest.approx([beta] * per_epoch)
    assert model.kl_anneal == 1.0               # evaluation after training sees the full ELBO


def test_kl_anneal_scales_only_the_kl_term_of_the_vae_loss(tiny_config):
    from vaebench.models import build_model
    torch.manual_seed(0)
    model = build_model(tiny_config.models["mnist_vae"], (1, 28, 28))
    x = torch.bernoulli(torch.full((16, 1, 28, 28), 0.3))
    out = {}
    for a in (0.0, 0.5, 1.0):
        model.kl_anneal = a
        torch.manual_seed(1)
        out[a] = model.loss(x, 0)
    terms = out[1.0].terms
    for a in (0.0, 0.5):
        assert out[a].loss.item() == pytest.approx((terms["recon"] + a * terms["kl"]).item(),
                                                   rel=1e-5)
        assert out[a].terms["elbo"].item() == pytest.approx(terms["elbo"].item(), rel=1e-6)


def test_a_non_finite_loss_stops_training_naming_epoch_and_step(tiny_config, tiny_data,
                                                                monkeypatch):
    """The loss turns NaN at step 5 (epoch 2 of 4 steps each, 256 images / 64): the
    per-epoch check names that step, from a flag kept on the device."""
    from vaebench.data import load_prepared
    from vaebench.models import build_model
    from vaebench.train import Diverged, fit
    data = load_prepared(tiny_data / "mnist")
    model = build_model(tiny_config.models["mnist_ae"], data.image_shape)
    real = model.loss

    def loss(x, step, **kw):
        out = real(x, step, **kw)
        if step == 5:
            out.loss = out.loss * float("nan")
        return out
    monkeypatch.setattr(model, "loss", loss)
    with pytest.raises(Diverged, match=r"diverged at epoch 2, step 5 \(loss = nan\)"):
        fit(model, data, tiny_config.train.model_copy(update={"batch_size": 64}), epochs=3,
            seed=0, binarize=True)


def test_diverging_training_is_a_config_error_and_writes_nothing(tiny_config, tiny_data,
                                                                tmp_path):
    from vaebench.config import ConfigError
    cfg = tiny_config.model_copy(update={"sections": {
        **tiny_config.sections, "train": tiny_config.train.model_copy(update={"lr": 1e6})}})
    with pytest.raises(ConfigError, match=r"models\.mnist_vae \(seed 0\): training diverged at "
                                          r"epoch 1, step \d+ \(loss = nan\); try a smaller "
                                          r"train\.lr \(now 1e\+06\)"):
        _train(cfg, "mnist_vae", tiny_data, tmp_path)
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.json"))
