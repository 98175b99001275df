"""The shared tracking server of scripts/mlflow_server.sh: PostgreSQL and `mlflow server`
on the loopback interface, started and stopped here; a stage's files mirrored into it."""
from __future__ import annotations

from pathlib import Path

import pytest

from vaebench import mirror, tracking


@pytest.mark.slow
def test_a_stage_mirrors_into_the_postgres_server_and_its_artifacts_download(
        tracking_server, train_files, tmp_path, monkeypatch):
    with tracking_server() as server:
        started = server.start()
        uri = server.uri
        assert f"export MLFLOW_TRACKING_URI={uri}" in started.stdout
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)       # the only change a client makes
        monkeypatch.setattr(tracking, "_unreachable", set())
        for _ in range(2):                                   # mirroring again adds nothing
            mirror.train(train_files["metrics"], train_files["models"], train_files["plots"],
                         data_dir=train_files["data"])
        from mlflow.tracking import MlflowClient
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(tracking.EXPERIMENT)
        assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
        [run] = client.search_runs([exp.experiment_id])
        assert run.data.metrics["final/test/loss"] == 2.5
        assert run.info.end_time - run.info.start_time == int(train_files["work_s"] * 1000)
        assert run.data.tags["mlflow.source.name"] == "train@m"
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["toy"]
        # the artifact comes back through the server (no access to its folder needed) ...
        got = client.download_artifacts(run.info.run_id, "checkpoint/seed0.pt",
                                        str(tmp_path / "down"))
        assert Path(got).read_bytes() == (train_files["models"] / "seed0.pt").read_bytes()
        # ... and the server keeps it under its artifacts folder; the run is in PostgreSQL
        assert list((server.dir / "artifacts").rglob("seed0.pt"))
        assert server.query("SELECT run_uuid FROM runs") == [(run.info.run_id,)]
        assert server.script("status", 60).returncode == 0
        stopped = server.script("stop", 120)
        status = server.script("status", 60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert status.returncode == 3 and "MLflow server: down" in status.stdout
    assert "PostgreSQL: down" in status.stdout
