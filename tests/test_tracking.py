"""MLflow mirroring: one run per trained variant, the store's location, failure tolerance."""
from __future__ import annotations

import pytest

from vaebench import tracking
from vaebench.train import train_stage


def test_project_root_escapes_dvc_temporary_experiment_copies(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    (root / ".dvc" / "tmp" / "exps" / "tmpab12").mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(root / ".dvc" / "tmp" / "exps" / "tmpab12"))
    assert tracking.project_root() == root.resolve()
    monkeypatch.setenv("DVC_ROOT", str(root))
    assert tracking.project_root() == root.resolve()
    monkeypatch.delenv("DVC_ROOT")
    monkeypatch.chdir(root / ".dvc" / "tmp")
    assert tracking.project_root() == root.resolve()


def test_default_store_is_sqlite_in_the_project_root(tmp_path, monkeypatch):
    (tmp_path / ".dvc").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / ".dvc" / "tmp" / "exps" / "x"))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.tracking_uri() == "http://tracking.example:5000"


def test_artifacts_live_beside_the_sqlite_store_not_in_the_working_directory(tmp_path,
                                                                           monkeypatch):
    store, cwd = tmp_path / "store", tmp_path / "cwd"
    store.mkdir(), cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    assert tracking.artifact_location() == (store / "mlartifacts").resolve().as_uri()
    (tmp_path / "a.txt").write_text("x")
    with tracking.model_run("m", 0, "key") as run:
        run.log_artifact(tmp_path / "a.txt", "files")
    assert list((store / "mlartifacts").rglob("a.txt")) and not any(cwd.iterdir())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.artifact_location() is None         # a server chooses its own


def test_one_run_per_variant_with_params_curves_metrics_and_checkpoint(
        tiny_config, tiny_data, tmp_path):
    from mlflow.tracking import MlflowClient
    for name in ("mnist_ae", "mnist_vae"):
        train_stage(tiny_config, name, tiny_data / "mnist", tmp_path / name, tmp_path / f"{name}.json",
                    tmp_path / f"plots_{name}")
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["model"] for r in runs) == ["mnist_ae", "mnist_vae"]
    run = next(r for r in runs if r.data.tags["model"] == "mnist_vae")
    tags = run.data.tags
    assert tags["family"] == "vae" and tags["dataset"] == "mnist" and tags["profile"] == "tiny"
    assert tags["device"] == "cpu" and tags["seed"] == "0" and "git_commit" in tags
    assert tags["dvc_experiment"] == "workspace"
    assert run.data.params["model.latent_dim"] == "50" and run.data.params["train.lr"] == "0.001"
    epochs = tiny_config.train.epochs_for("mnist")
    history = client.get_metric_history(run.info.run_id, "curve/test/loss")
    assert [m.step for m in history] == list(range(1, epochs + 1))
    assert "final/test/elbo" in run.data.metrics
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")]
    assert "checkpoint/seed0.pt" in artifacts
    # the same checkpoint evaluated later finds the same run instead of making a new one
    ckpt = tmp_path / "mnist_vae" / "seed0.pt"
    from vaebench import io
    with tracking.model_run("mnist_vae", 0, io.sha256_file(ckpt)) as again:
        again.log_metrics({"x": 1.0}, prefix="later")
    assert len(client.search_runs([exp.experiment_id])) == 2
    assert client.get_run(run.info.run_id).data.metrics["later/x"] == 1.0


def test_unreachable_store_warns_and_loses_no_result(tiny_config, tiny_data, tmp_path,
                                                    monkeypatch, capsys):
    (tmp_path / "a_file").write_text("not a directory")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/a_file/mlflow.db")
    metrics = train_stage(tiny_config, "mnist_ae", tiny_data / "mnist", tmp_path / "m",
                          tmp_path / "m.json", tmp_path / "p")
    assert (tmp_path / "m" / "seed0.pt").is_file() and (tmp_path / "m.json").is_file()
    assert metrics["test"]["loss"] > 0
    assert "warning: MLflow" in capsys.readouterr().err


@pytest.mark.parametrize("nested, flat", [
    ({"a": {"b": 1, "c": {"d": 2}}}, {"a.b": 1, "a.c.d": 2}),
    ({}, {}),
])
def test_flatten(nested, flat):
    assert tracking.flatten(nested) == flat
