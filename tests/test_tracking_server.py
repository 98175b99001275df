"""The shared tracking server of scripts/mlflow_server.sh: PostgreSQL and `mlflow server`
on the loopback interface, started and stopped here; a stage's files mirrored into it."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vaebench import mirror, tracking

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "mlflow_server.sh"


def _postgres_missing() -> str | None:
    if not (shutil.which("pg_ctl") or glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")):
        return "PostgreSQL's server programs are not installed (apt-get install -y postgresql)"
    try:
        import psycopg  # noqa: F401  (SQLAlchemy's driver for postgresql:// URIs)
    except ImportError:
        return "the PostgreSQL driver is not installed (pip install -e '.[server]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _script(command: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(_postgres_missing() is not None, reason=str(_postgres_missing()))
def test_a_stage_mirrors_into_the_postgres_server_and_its_artifacts_download(
        train_files, tmp_path, monkeypatch):
    # the database runs as `postgres` when the tests run as root: a folder it can reach
    server_dir = Path(tempfile.mkdtemp(prefix="vaebench-server-"))
    server_dir.chmod(0o755)
    port = _free_port()
    env = {**os.environ, "VAEBENCH_SERVER_DIR": str(server_dir),
           "VAEBENCH_MLFLOW_PORT": str(port), "VAEBENCH_PG_PORT": str(_free_port()),
           "VAEBENCH_MLFLOW_WORKERS": "1", "MLFLOW": str(Path(sys.executable).parent / "mlflow")}
    try:
        started = _script("start", env)
        assert started.returncode == 0, started.stdout + started.stderr
        uri = f"http://127.0.0.1:{port}"
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
        assert list((server_dir / "artifacts").rglob("seed0.pt"))
        import psycopg
        with psycopg.connect(f"host=127.0.0.1 port={env['VAEBENCH_PG_PORT']} user=mlflow "
                             f"dbname=mlflow") as db:
            assert db.execute("SELECT run_uuid FROM runs").fetchall() == [(run.info.run_id,)]
        assert _script("status", env, 60).returncode == 0
    finally:
        stopped = _script("stop", env, 120)
        status = _script("status", env, 60)
        shutil.rmtree(server_dir, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert status.returncode == 3 and "MLflow server: down" in status.stdout
    assert "PostgreSQL: down" in status.stdout
