"""Shared fixtures: the real params.yaml shrunk to the tiny profile, tiny prepared data,
a tracking server on PostgreSQL for the slow tests that need one."""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Keep BLAS / torch to one thread in tests: the machine has 2 cores and the
# suite runs several processes; results do not depend on it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _session_mlflow_store(tmp_path_factory):
    """A throwaway MLflow store for the whole session, in place before any fixture runs:
    module- and session-scoped fixtures that train are set up before the per-test store
    below exists, and without this they logged into the project's own mlflow.db."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    store = tmp_path_factory.mktemp("mlflow-session")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    os.environ.pop("DVC_ROOT", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path_factory, monkeypatch):
    """Every test logs into its own throwaway MLflow store, never the project's."""
    store = tmp_path_factory.mktemp("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.delenv("DVC_ROOT", raising=False)


@pytest.fixture
def mlflow_recorder(monkeypatch) -> list:
    """What ``mirror.*`` logs, recorded instead of sent to a store: ``(prefix, metrics)``
    per ``log_metrics`` call and ``("artifact", file name)`` per artifact."""
    from vaebench import tracking
    logged: list = []

    class Run:
        def log_metrics(self, metrics, prefix="", step=0):
            logged.append((prefix, metrics))

        def log_params(self, params):
            pass

        def log_dataset(self, *args, **kwargs):
            pass

        def log_artifact(self, path, artifact_path=None):
            logged.append(("artifact", Path(path).name))

    @contextmanager
    def model_run(model, seed, sha, tags=None, stage=None, span=None):
        yield Run()
    monkeypatch.setattr(tracking, "model_run", model_run)
    return logged


@pytest.fixture
def raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def write_params(tmp_path):
    """Write a params dict to tmp_path/params.yaml and return the path."""
    def write(params: dict, name: str = "params.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return path
    return write


@pytest.fixture
def tiny_config(raw_params, write_params):
    from vaebench.config import load_config
    raw_params["profile"] = "tiny"
    return load_config(write_params(raw_params))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Prepared tiny dSprites and MNIST (session-wide: preparing costs a few seconds)."""
    from vaebench.config import load_config
    from vaebench.data import prepare_stage
    tmp = tmp_path_factory.mktemp("prepared")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = "tiny"
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp / "params.yaml")
    for name in ("dsprites", "mnist"):
        prepare_stage(cfg, name, ROOT / "data" / "raw", tmp / name)
    return tmp


@pytest.fixture(scope="session")
def copy_project():
    return _copy_project


@pytest.fixture(scope="session")
def narrow_params():
    return _narrow_params


def _narrow_params(params: dict, models: tuple[str, ...]) -> dict:
    """``params`` (params.yaml, parsed) on the tiny profile with only ``models``, in the
    evaluate lists too, and only their dataset (fewer stages in a test pipeline)."""
    dataset = params["models"][models[0]]["dataset"]
    params["profile"] = "tiny"
    params["models"] = {m: params["models"][m] for m in models}
    params["evaluate"] = {s: [m for m in names if m in models]
                          for s, names in params["evaluate"].items()}

    def keep(node):                  # every `datasets:` block or list, at any depth
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasets" and isinstance(value, dict):
                    node[key] = {k: v for k, v in value.items() if k == dataset}
                elif key == "datasets" and isinstance(value, list):
                    node[key] = [d for d in value if d == dataset]
                else:
                    keep(value)
    keep(params)
    return params


def _copy_project(dest: Path) -> Path:
    """Copy what the pipeline needs (code, params, dvc.yaml, .dvcignore, raw data) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("src", "dvc.yaml", "params.yaml", ".dvcignore", "data/raw", "pyproject.toml"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    return dest


@pytest.fixture
def train_files(tmp_path):
    """One seed of ``train@m`` as the stage leaves it, and the prepared data's meta.json
    (nothing trained): the paths, when the seed's work started, how long its fit took
    (``train_s``) and how long the whole work took (``work_s``, a little longer)."""
    from vaebench import io
    started, train_s, work_s = (datetime(2026, 11, 29, 21, 0, 0, 250000, tzinfo=timezone.utc),
                                95.5, 99.75)
    data, models, plots = tmp_path / "data" / "toy", tmp_path / "models" / "m", tmp_path / "plots"
    for d in (data, models, plots):
        d.mkdir(parents=True)
    io.write_json(data / "meta.json", {
        "dataset": "toy", "source": "generated", "n_train": 60, "n_test": 20,
        "image_shape": [1, 4, 4], "sha256": {"train.npz": "a" * 64, "test.npz": "b" * 64}})
    (models / "seed0.pt").write_bytes(b"a checkpoint")     # mirroring only hashes it
    io.write_json(models / "config.json", {"model": {"family": "ae"}, "train": {"lr": 0.1},
                                           "epochs": 2, "seeds": [0]})
    (plots / "seed0.csv").write_text("epoch,step,train_loss,test_loss\n1,5,3.0,3.5\n"
                                     "2,10,2.0,2.5\n")
    seed = {"train": {"loss": 2.0}, "test": {"loss": 2.5}, "time_s": train_s,
            "started": started.isoformat(timespec="milliseconds"),
            "finished": (started + timedelta(seconds=work_s)).isoformat()}
    metrics = tmp_path / "train.json"
    io.write_json(metrics, {"model": "m", "family": "ae", "dataset": "toy", "profile": "tiny",
                            "device": "cpu", "n_params": 10, "seeds": {"0": seed}})
    return {"metrics": metrics, "models": models, "plots": plots, "data": data,
            "started": started, "train_s": train_s, "work_s": work_s}


# --- the shared tracking server (scripts/mlflow_server.sh) on loopback, for the slow tests ---

def postgres_missing() -> str | None:
    """Why the PostgreSQL-backed server cannot run here, or None when it can."""
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


class TrackingServer:
    """PostgreSQL and `mlflow server` as scripts/mlflow_server.sh runs them, in a folder
    of their own, on free loopback ports."""

    def __init__(self, folder: Path):
        self.dir = folder
        self.pg_port, port = _free_port(), _free_port()
        self.uri = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "VAEBENCH_SERVER_DIR": str(folder),
                    "VAEBENCH_MLFLOW_PORT": str(port), "VAEBENCH_PG_PORT": str(self.pg_port),
                    "VAEBENCH_MLFLOW_WORKERS": "1",
                    "MLFLOW": str(Path(sys.executable).parent / "mlflow")}

    def script(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "scripts" / "mlflow_server.sh"), command],
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self) -> subprocess.CompletedProcess:
        started = self.script("start")
        assert started.returncode == 0, started.stdout + started.stderr
        return started

    def kill_mlflow(self) -> None:
        """SIGKILL the MLflow server and its workers (PostgreSQL stays up), as a crash;
        return once its address no longer answers."""
        pid = int((self.dir / "mlflow.pid").read_text())
        group = subprocess.run(["ps", "-o", "pid=,pgid=,cmd=", "--sid", str(pid)],
                               capture_output=True, text=True).stdout
        os.killpg(pid, signal.SIGKILL)      # the script starts it in a session of its own
        for _ in range(100):
            try:
                urllib.request.urlopen(self.uri + "/health", timeout=1).close()
            except OSError:
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.uri} still answers after SIGKILL of {pid}'s group:\n"
                             f"{group}")

    def query(self, sql: str, *args) -> list[tuple]:
        import psycopg
        with psycopg.connect(f"host=127.0.0.1 port={self.pg_port} user=mlflow "
                             f"dbname=mlflow") as db:
            return db.execute(sql, args).fetchall()


@pytest.fixture(scope="session")
def tracking_server():
    """A context manager: a started TrackingServer, stopped (and its folder removed) on
    exit. Skips the test, saying why, where PostgreSQL or its driver is missing."""
    reason = postgres_missing()

    @contextmanager
    def server():
        if reason is not None:
            pytest.skip(reason)
        # the database runs as `postgres` when the tests run as root: a folder it can reach
        folder = Path(tempfile.mkdtemp(prefix="vaebench-server-"))
        folder.chmod(0o755)
        srv = TrackingServer(folder)
        try:
            yield srv
        finally:
            srv.script("stop", 120)
            shutil.rmtree(folder, ignore_errors=True)
    return server
