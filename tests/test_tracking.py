"""MLflow mirroring: one run per trained variant, the store's location, failure tolerance."""
from __future__ import annotations

from pathlib import Path

import pytest

from vaebench import cli, mirror, tracking
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


@pytest.mark.slow   # runs the train stage for two models
def test_one_run_per_variant_with_params_curves_metrics_and_checkpoint(
        tiny_config, tiny_data, tmp_path):
    from mlflow.tracking import MlflowClient
    for name in ("mnist_ae", "mnist_vae"):
        train_stage(tiny_config, name, tiny_data / "mnist", tmp_path / name, tmp_path / f"{name}.json",
                    tmp_path / f"plots_{name}")
        mirror.train(tmp_path / f"{name}.json", tmp_path / name, tmp_path / f"plots_{name}")
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


def test_a_stage_never_touches_the_store_and_an_unusable_one_loses_no_result(
        tiny_config, tiny_data, tmp_path, monkeypatch, capsys):
    import torch
    (tmp_path / "a_file").write_text("not a directory")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/a_file/mlflow.db")
    metrics = train_stage(tiny_config, "mnist_ae", tiny_data / "mnist", tmp_path / "m",
                          tmp_path / "m.json", tmp_path / "p")
    assert (tmp_path / "m" / "seed0.pt").is_file() and (tmp_path / "m.json").is_file()
    assert metrics["test"]["loss"] > 0 and metrics["threads"] == torch.get_num_threads()
    assert "MLflow" not in capsys.readouterr().err      # the stage itself logs nothing
    mirror.train(tmp_path / "m.json", tmp_path / "m", tmp_path / "p")   # what mlflow-sync does
    assert "warning: MLflow" in capsys.readouterr().err
    assert (tmp_path / "m.json").is_file()


@pytest.mark.parametrize("nested, flat", [
    ({"a": {"b": 1, "c": {"d": 2}}}, {"a.b": 1, "a.c.d": 2}),
    ({}, {}),
])
def test_flatten(nested, flat):
    assert tracking.flatten(nested) == flat


# --- several processes, one new sqlite store -------------------------------------------------

_WORKER = """
import sys
from vaebench import tracking
worker, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    with tracking.model_run(f"w{worker}", i, f"{worker:04d}{i:04d}") as run:
        assert run is not None, "MLflow failed"
        run.log_params({"worker": worker, "i": i})
        run.log_metrics({"value": worker * 100 + i})
"""


@pytest.mark.slow
def test_concurrent_processes_on_a_new_sqlite_store_lose_no_run(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    from mlflow.tracking import MlflowClient
    store = tmp_path / "fresh" / "mlflow.db"
    store.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    workers, per_worker = 4, 3
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(w), str(per_worker)],
                              env=os.environ.copy(), stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    errors = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert not any("warning: MLflow" in e for e in errors), errors
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id])
    keys = sorted(r.data.tags[tracking.RUN_KEY_TAG] for r in runs)
    expected = sorted(tracking.run_key(f"w{w}", i, f"{w:04d}{i:04d}")
                      for w in range(workers) for i in range(per_worker))
    assert keys == expected                                  # each exactly once
    assert all(r.data.metrics["value"] == int(r.data.params["worker"]) * 100
               + int(r.data.params["i"]) for r in runs)


def test_database_is_locked_is_retried_other_errors_are_not(monkeypatch):
    monkeypatch.setattr(tracking, "RETRY_DELAYS", (0.0, 0.0))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "done"
    assert tracking._retrying(flaky) == "done" and len(calls) == 3

    def locked():
        calls.append(1)
        raise RuntimeError("database is locked")
    calls.clear()
    with pytest.raises(RuntimeError, match="locked"):      # bounded: gives up after the delays
        tracking._retrying(locked)
    assert len(calls) == len(tracking.RETRY_DELAYS) + 1
    with pytest.raises(ValueError):
        tracking._retrying(lambda: (_ for _ in ()).throw(ValueError("no such table")))


def test_a_concurrent_insert_of_the_same_dataset_is_retried_only_where_asked(monkeypatch):
    """Two queue workers logging one dataset at once: PostgreSQL's UniqueViolation (or
    sqlite's UNIQUE constraint) is retried for log_inputs, never for other calls."""
    monkeypatch.setattr(tracking, "RETRY_DELAYS", (0.0, 0.0))
    calls = []

    def racing():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError('psycopg.errors.UniqueViolation: duplicate key value violates '
                               'unique constraint "dataset_pk"')
        return "linked"
    assert tracking._retrying(racing, _also=tracking.INSERT_RACES) == "linked"
    calls.clear()
    with pytest.raises(RuntimeError, match="UniqueViolation"):
        tracking._retrying(racing)


# --- an unreachable tracking server ----------------------------------------------------------

def test_unreachable_server_is_detected_once_and_the_stages_never_wait_for_it(
        tiny_config, tiny_data, tmp_path, monkeypatch, capsys):
    uri = "http://127.0.0.1:9"        # the discard port: nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking, "_unreachable", set())
    clients = []
    monkeypatch.setattr(tracking, "_client", lambda: clients.append(1))   # must not be used
    from vaebench.evaluate.loglik import loglik_stage
    train_stage(tiny_config, "mnist_ppca", tiny_data / "mnist", tmp_path / "m",
                tmp_path / "train.json", tmp_path / "p")
    loglik_stage(tiny_config, "mnist_ppca", tmp_path / "m", tiny_data, tmp_path / "ll.json",
                 tmp_path / "ll.csv", progress=False)
    assert "MLflow" not in capsys.readouterr().err           # the stages never asked
    for path in ("train.json", "ll.json", "ll.csv", "m/seed0.pt", "p/seed0.csv"):
        assert (tmp_path / path).is_file(), path
    mirror.train(tmp_path / "train.json", tmp_path / "m", tmp_path / "p")    # mlflow-sync's
    mirror.loglik(tmp_path / "ll.json", tmp_path / "m")                      # calls
    err = capsys.readouterr().err
    assert err.count(f"MLflow tracking server {uri} is unreachable") == 1   # once, not per run
    assert clients == []                                      # MLflow was never called


def test_a_reachable_server_is_used(monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(tracking, "_unreachable", set())
        assert tracking.reachable(f"http://127.0.0.1:{server.server_port}")
        assert tracking.reachable("sqlite:////nonexistent/mlflow.db")   # not a server
    finally:
        server.shutdown()


def test_the_pipeline_sync_stage_survives_an_unreachable_server_and_the_replay_does_not(
        tmp_path, monkeypatch, capsys):
    """`vaebench mlflow-sync --best-effort` (dvc.yaml's `mlflow` stage) warns and succeeds,
    so an outage never fails an experiment; plain `vaebench mlflow-sync` (the replay) fails."""
    from vaebench.config import load_config
    monkeypatch.setattr(tracking, "_unreachable", set())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")      # discard port: no server
    monkeypatch.setattr(tracking, "SERVER_TIMEOUT_S", 0.5)
    monkeypatch.chdir(tmp_path)
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    assert cli.main(["--params", str(params), "mlflow-sync", "--best-effort"]) == 0
    err = capsys.readouterr().err
    assert "unreachable" in err and "vaebench mlflow-sync" in err
    monkeypatch.setattr(tracking, "_unreachable", set())
    assert cli.main(["--params", str(params), "mlflow-sync"]) == 2
    assert "does not answer; nothing mirrored" in capsys.readouterr().err
    assert load_config(params).threads == "auto"
