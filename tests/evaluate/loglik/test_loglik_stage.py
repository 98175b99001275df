"""``loglik@<model>`` end to end on tiny data, its params and its errors."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from vaebench import cli, mirror, tracking
from vaebench.config import ConfigError, load_config
from vaebench.data import mnist
from vaebench.devices import DeviceError
from vaebench.evaluate.loglik import evaluate_model, loglik_stage
from vaebench.models import build_model
from vaebench.checkpoints import save_checkpoint

REPO = Path(__file__).resolve().parents[3]


def write_params(tmp_path: Path, edit) -> Path:
    """A copy of the repo's params.yaml with ``edit(raw_dict)`` applied."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Tiny prepared MNIST and two seeds of an (untrained) mnist_vae checkpoint."""
    root = tmp_path_factory.mktemp("loglik")
    (root / "raw").mkdir()
    mnist.prepare(mnist.MNISTConfig(n_train=64, n_test=32), root / "raw",
                  root / "data" / "prepared" / "mnist")
    cfg = load_config(REPO / "params.yaml", "tiny")
    cfg = cfg.model_copy(update={"seeds": [0, 1]})   # the stage evaluates exactly these
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model(cfg.models["mnist_vae"], (1, 28, 28))
        save_checkpoint(root / "models" / "mnist_vae" / f"seed{seed}.pt", model,
                        {"model": "mnist_vae", "seed": seed, "dataset": "mnist"})
    return root, cfg


@pytest.fixture
def mlflow_calls(monkeypatch):
    """Record what ``mlflow-sync`` mirrors of the stage's files instead of talking to a store."""
    calls = []

    class Recorder:
        def __init__(self, key):
            self.key = key

        def log_metrics(self, metrics, prefix=""):
            calls.append((self.key, prefix, tracking.flatten(metrics, prefix, "/")))

        def log_artifact(self, path, artifact_path=None):
            calls.append((self.key, "artifact", path))

    @contextmanager
    def model_run(model, seed, sha, tags=None, stage=None, span=None):
        yield Recorder((model, seed))

    monkeypatch.setattr(tracking, "model_run", model_run)
    return calls


def test_stage_writes_metrics_plots_and_its_files_mirror(project, mlflow_calls, tmp_path):
    root, cfg = project
    out, plots = tmp_path / "m" / "mnist_vae.json", tmp_path / "p" / "mnist_vae.csv"
    metrics = loglik_stage(cfg, "mnist_vae", root / "models" / "mnist_vae",
                           root / "data" / "prepared", out, plots, progress=False)
    assert json.loads(out.read_text()) == json.loads(json.dumps(metrics))
    assert metrics["model"] == "mnist_vae" and metrics["family"] == "vae"
    # the units of every number, for the report's grouping (from the checkpoint's config)
    assert metrics["likelihood"] == "bernoulli" and metrics["binarize"] is True
    assert metrics["ks"] == [1, 5] and metrics["n_test"] == 32
    assert set(metrics["seeds"]) == {"0", "1"}
    per_seed = [metrics["seeds"][s] for s in ("0", "1")]
    assert "kl_per_dim" not in metrics        # per unit: per seed only
    for key in ("elbo", "kl"):              # the top level is the mean over seeds
        expected = sum(r[key]["mean"] for r in per_seed) / 2
        assert metrics[key]["mean"] == pytest.approx(expected)
        assert "mean_ci95" in metrics[key]
    for r in per_seed:
        assert r["n_test"] == 32 and r["kl_closed_form"] is True
        assert r["elbo"]["mean"] == pytest.approx(r["recon"]["mean"] - r["kl"]["mean"])
        assert sum(r["kl_per_dim"]) == pytest.approx(r["kl"]["mean"], rel=1e-5)
        assert sum(a > 0.01 for a in r["unit_activity"]) == r["active_units"]
        assert len(r["unit_activity"]) == 50 and 0 <= r["active_units"] <= 50
        assert "exact" not in r and "error" not in r["log_p_hat"]["k5"]
        assert r["log_p_hat"]["k5"]["minus_elbo"] == pytest.approx(
            r["log_p_hat"]["k5"]["mean"] - r["elbo"]["mean"])
        assert r["gaps"]["n"] == 8 and r["gaps"]["steps"] == 5
        assert r["gaps"]["inference"]["mean"] == pytest.approx(
            r["gaps"]["approximation"]["mean"] + r["gaps"]["amortisation"]["mean"])
        parts = {"estimates", "exact", "posterior", "gaps", "total"}
        assert set(r["time_s"]) == set(r["cpu_s"]) == parts
    table = pd.read_csv(plots)
    assert list(table["k"]) == [1, 5] and set(table["model"]) == {"mnist_vae"}
    assert {"log_p_hat", "stderr", "naive", "naive_stderr", "elbo", "exact"} <= set(table)
    assert table["log_p_hat"].tolist() == [metrics["log_p_hat"][f"k{k}"]["mean"] for k in (1, 5)]
    assert not mlflow_calls                  # the stage writes files only; MLflow comes after
    mirror.loglik(out, root / "models" / "mnist_vae")   # what `vaebench mlflow-sync` calls
    logged = {key: flat for key, prefix, flat in mlflow_calls if prefix == "loglik"}
    assert set(logged) == {("mnist_vae", 0), ("mnist_vae", 1)}
    assert logged[("mnist_vae", 1)]["loglik/log_p_hat/k5/mean"] == \
        metrics["seeds"]["1"]["log_p_hat"]["k5"]["mean"]


def test_exact_models_report_errors(linear_gaussian):
    cfg = load_config(REPO / "params.yaml", "tiny").section("loglik")
    model = linear_gaussian().eval()
    x = model.sample_data(32)
    out = evaluate_model(model, x, cfg, progress=False)
    exact = float(model.exact_log_prob(x).detach().mean())
    assert out["exact"]["mean"] == pytest.approx(exact)
    for k in (1, 5):
        est = out["log_p_hat"][f"k{k}"]
        assert est["error"] == pytest.approx(est["mean"] - exact)
        assert out["naive"][f"k{k}"]["error"] < est["error"]
    assert out["elbo"]["error"] < 0
    assert out["gaps"]["approximation_exact"]["mean"] > 0
    assert out["active_units"] == 3
    # paired step between consecutive K, and the per-point values at the largest K
    k1, k5 = out["log_p_hat"]["k1"], out["log_p_hat"]["k5"]
    assert "minus_prev" not in k1
    assert k5["minus_prev"] == pytest.approx(k5["mean"] - k1["mean"])
    assert 0 < k5["minus_prev_stderr"] < k5["stderr"]
    assert len(out["log_p_hat_points"]) == 32
    assert np.mean(out["log_p_hat_points"]) == pytest.approx(k5["mean"], abs=1e-3)


@pytest.mark.parametrize("edit, match", [
    (lambda r: r["loglik"].update(ks=[0, 10]),
     r"loglik \(profile quick\)\.ks\.0: Input should be greater than 0"),
    (lambda r: r["loglik"].update(ks=[100, 10]),
     r"loglik \(profile quick\)\.ks: .*strictly increasing"),
    (lambda r: r["loglik"].update(chunk_points=0), r"loglik \(profile quick\)\.chunk_points"),
    (lambda r: r["loglik"].update(n_test=100, gap_n=200),
     r"gap_n \(200\) must not exceed n_test \(100\)"),
    (lambda r: r["loglik"].update(samples=3), r"loglik \(profile \w+\)\.samples: Extra inputs"),
    (lambda r: r["profiles"]["paper"]["loglik"].update(ks=[-1]),
     r"loglik \(profile paper\)\.ks\.0: Input should be greater than 0"),
    (lambda r: r["profiles"]["quick"]["loglik"]["datasets"]["dsprites"].update(ks=[0]),
     r"loglik \(profile quick\): Value error, datasets\.dsprites\.ks\.0: Input should be greater"),
    (lambda r: r["profiles"]["quick"]["loglik"]["datasets"]["dsprites"].update(gap_n=60),
     r"datasets\.dsprites: gap_n \(60\) must not exceed n_test \(50\)$"),
    (lambda r: r["loglik"].update(datasets={"cifar": {"n_test": 5, "gap_n": 2}}),
     r"loglik\.datasets\.cifar \(profile \w+\): no dataset 'cifar'"),
    (lambda r: r["evaluate"]["loglik"].append("mnist_ae"),
     r"evaluate.loglik: model 'mnist_ae' \(family 'ae'\) is not probabilistic"),
])
def test_bad_params_are_clear_errors(tmp_path, edit, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write_params(tmp_path, edit))


def test_dataset_overrides_apply_to_that_dataset_only():
    section = load_config(REPO / "params.yaml", "quick").section("loglik")
    dsprites, mnist_ = section.for_dataset("dsprites"), section.for_dataset("mnist")
    assert dsprites.n_test == 50 and dsprites.ks == [1, 10, 100] and dsprites.gap_n == 10
    assert mnist_.n_test == section.n_test == 500 and mnist_.ks == [1, 10, 100, 1000]
    assert dsprites.seed == section.seed and dsprites.datasets == {}


def test_absent_device_fails_before_any_work(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    cfg = load_config(write_params(tmp_path, lambda r: r["loglik"].update(device="cuda")))
    with pytest.raises(DeviceError, match="loglik.device"):
        loglik_stage(cfg, "mnist_vae", tmp_path / "no_models", tmp_path / "no_data",
                     tmp_path / "out.json", tmp_path / "out.csv")


def test_cli_refuses_a_model_without_likelihood(tmp_path, capsys):
    code = cli.main(["--params", str(REPO / "params.yaml"), "loglik", "mnist_ae",
                     "--models", str(tmp_path), "--data", str(tmp_path),
                     "--out", str(tmp_path / "o.json"), "--plots", str(tmp_path / "o.csv")])
    assert code == 2
    assert "mnist_ae" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_cli_names_missing_checkpoints(tmp_path, capsys):
    code = cli.main(["--params", str(REPO / "params.yaml"), "loglik", "mnist_vae",
                     "--models", str(tmp_path / "models" / "mnist_vae"), "--data", str(tmp_path),
                     "--out", str(tmp_path / "o.json"), "--plots", str(tmp_path / "o.csv")])
    assert code == 2
    assert "train@mnist_vae" in capsys.readouterr().err
