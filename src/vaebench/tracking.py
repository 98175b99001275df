"""MLflow mirroring -- the only module that imports mlflow.

The files under ``reports/metrics/`` and ``models/`` are the source of truth;
MLflow mirrors them so runs can be compared in the UI. One experiment for the
suite; one run per (model, seed, checkpoint), found again by the tag
``vaebench.run_key`` so every evaluation stage adds its metrics and figures to
the run of the model it evaluated. Stages only write files; the pipeline's last
stage, ``mlflow`` (``vaebench mlflow-sync``), mirrors every stage's files in one
process (:mod:`vaebench.mirror`), so no stage waits on the store, the store has
one writer per pipeline, and the same command replays the files into a store
that was down, lost or replaced.

Failures: a tracking server that does not answer within a few seconds is reported
once and skipped for the rest of the process; any other MLflow error warns; no
result is lost either way. Several processes (``dvc queue start -j N``) share a
sqlite store safely: each holds a file lock beside the database while it uses
it (so the schema is created once), and ``database is locked`` errors from other
readers are retried.

Store: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<project root>/mlflow.db``;
a sqlite store keeps new experiments' artifacts in ``mlartifacts/`` beside its
file (``<project root>/mlartifacts`` by default). The project root is resolved
through ``DVC_ROOT`` -- and out of DVC's temporary experiment copies under
``.dvc/tmp/exps/`` -- so ``dvc exp run --queue`` logs into the same store as
``dvc repro``.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

EXPERIMENT = os.environ.get("VAEBENCH_EXPERIMENT", "vaebench")
RUN_KEY_TAG = "vaebench.run_key"
# MLflow 3's UI opens an experiment of this kind on its runs table (not the GenAI view).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


class TrackingError(Exception):
    """The configured MLflow store cannot be used (for commands that need it)."""


def project_root(start: Path | None = None) -> Path:
    """The user's project root, also from inside a queued experiment's temp copy."""
    root = os.environ.get("DVC_ROOT")
    path = Path(root) if root else _find_dvc_root(Path(start or Path.cwd()).resolve())
    parts = path.resolve().parts
    # DVC runs queued / temp-dir experiments in <root>/.dvc/tmp/exps/...: go back to <root>.
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path.resolve()


def _find_dvc_root(path: Path) -> Path:
    for p in (path, *path.parents):
        if (p / ".dvc").is_dir():
            return p
    return path


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def git_commit() -> str:
    rev = os.environ.get("DVC_EXP_BASELINE_REV")
    if rev:
        return rev
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=project_root()).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(d: dict, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out


def _client():
    import mlflow  # noqa: F401  (heavy import, only when logging)
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=tracking_uri())


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def store_lock(uri: str | None = None):
    """An inter-process lock on a sqlite store (``<db>.lock`` beside it), held while a
    process creates or writes runs: two processes initialising a new store at once
    corrupt its schema migration and lose runs. No lock for other stores."""
    db = _sqlite_path(uri or tracking_uri())
    if db is None or not db.parent.is_dir():
        return nullcontext()    # a missing folder fails (and warns) inside MLflow instead
    from filelock import FileLock
    return FileLock(str(db) + ".lock", timeout=600)


# ``database is locked`` from another reader of the sqlite file (e.g. the MLflow UI):
# retried with exponential backoff, about 10 s in all.
RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 4.0)


# Another process's insert of the same row (two queue workers logging one dataset at
# once): the store's own check-then-insert raced; asked again, it finds the row.
INSERT_RACES = ("UNIQUE constraint failed", "UniqueViolation", "duplicate key value")


def _retrying(call, *args, _also: tuple[str, ...] = (), **kwargs):
    """``call``, retried while the store answers ``database is locked`` (or one of
    ``_also``'s messages)."""
    for delay in (*RETRY_DELAYS, None):
        try:
            return call(*args, **kwargs)
        except Exception as err:
            if delay is None or not any(m in str(err) for m in ("database is locked", *_also)):
                raise
            time.sleep(delay)


# Seconds to wait for a tracking server's health check before mirroring without it.
SERVER_TIMEOUT_S = 3.0
_unreachable: set[str] = set()


def reachable(uri: str | None = None, warn: bool = True) -> bool:
    """False (with one warning per process and store, unless ``warn`` is false) when
    ``uri`` is an http(s) server that does not answer within ``SERVER_TIMEOUT_S``; True
    for any other store.

    MLflow itself retries an unreachable server for minutes on every call; checking
    once keeps a stage's results from waiting for it."""
    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return True
    if uri in _unreachable:
        return False
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=SERVER_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        pass                    # it answered (an error status still means it is there)
    except (OSError, ValueError) as err:
        _unreachable.add(uri)
        if warn:
            print(f"warning: MLflow tracking server {uri} is unreachable ({err}); continuing "
                  f"without MLflow -- the results are in the stage's output files; replay "
                  f"them later with `vaebench mlflow-sync`", file=sys.stderr)
        return False
    return True


def artifact_location() -> str | None:
    """Where a new experiment keeps its artifacts: ``mlartifacts/`` beside the sqlite
    file (the project's, or the one ``MLFLOW_TRACKING_URI`` names), never MLflow's
    default ``./mlruns`` relative to whatever the working directory is; None (the
    server's choice) for any other store."""
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


def _experiment_id(client) -> str:
    """The suite's experiment (created on first use), tagged as a model-development one."""
    exp = _retrying(client.get_experiment_by_name, EXPERIMENT)
    if exp is None:
        try:
            client.create_experiment(EXPERIMENT, artifact_location=artifact_location(),
                                     tags=EXPERIMENT_KIND)
        except Exception:  # created concurrently by a process that holds no lock (a server)
            pass
        exp = _retrying(client.get_experiment_by_name, EXPERIMENT)
    for key, value in EXPERIMENT_KIND.items():     # also on stores made before the tag
        if exp.tags.get(key) != value:
            _retrying(client.set_experiment_tag, exp.experiment_id, key, value)
    return exp.experiment_id


@contextmanager
def _best_effort(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:  # the files remain the source of truth
        print(f"warning: MLflow {what} failed ({type(err).__name__}: {err}); "
              f"the results are in the stage's output files", file=sys.stderr)


def _safe(method):
    """Run an MLflow call best-effort: a failure warns instead of losing the stage."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _best_effort(method.__name__):
            return _retrying(method, *args, **kwargs)
    return wrapper


class Run:
    """A handle on the MLflow run of one (model, seed, checkpoint)."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id
        self._history: dict[str, set[tuple[int, float]]] = {}

    @_safe
    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param
        items = [Param(k, str(v)[:6000]) for k, v in sorted(flatten(params).items())]
        existing = self.client.get_run(self.run_id).data.params
        items = [p for p in items if p.key not in existing]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    @_safe
    def log_metrics(self, metrics: dict, prefix: str = "", step: int = 0) -> None:
        """Log the numeric leaves of ``metrics`` at ``step``, except values the run already
        holds at that step: mirroring the same files again adds nothing."""
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in flatten(metrics, prefix, "/").items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        items = [m for m in items if (m.step, m.value) not in self._logged(m.key)]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])
        for m in items:
            self._history[m.key].add((m.step, m.value))

    def _logged(self, key: str) -> set[tuple[int, float]]:
        """(step, value) pairs already logged for ``key`` (read once per key)."""
        if not self._history:   # first call: which keys exist at all
            self._history = {k: None for k in self.client.get_run(self.run_id).data.metrics}
        if self._history.get(key) is None:
            self._history[key] = ({(h.step, h.value) for h in
                                   self.client.get_metric_history(self.run_id, key)}
                                  if key in self._history else set())
        return self._history[key]

    @_safe
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    @_safe
    def set_tags(self, tags: dict) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    @_safe
    def log_dataset(self, name: str, digest: str, source: str | Path, profile: dict,
                    context: str) -> None:
        """Record the dataset the run used (MLflow's Dataset column): ``digest`` names the
        exact files, ``source`` their folder; logging it again adds nothing."""
        import json
        from mlflow.entities import Dataset, DatasetInput, InputTag
        dataset = Dataset(name=name, digest=digest, source_type="local",
                          source=json.dumps({"uri": Path(source).resolve().as_uri()}),
                          profile=json.dumps(profile, sort_keys=True))
        _retrying(self.client.log_inputs, self.run_id, datasets=[DatasetInput(
            dataset, tags=[InputTag("mlflow.data.context", context)])], _also=INSERT_RACES)


def run_key(model: str, seed: int, checkpoint_sha: str) -> str:
    return f"{model}/seed{seed}/{checkpoint_sha[:16]}"


def source_tags(stage: str) -> dict[str, str]:
    """MLflow's standard source tags (the UI's Source column): the stage that made the
    run, and the git commit of the code when there is one."""
    commit = git_commit()
    return {"mlflow.source.type": "LOCAL", "mlflow.source.name": stage,
            **({"mlflow.source.git.commit": commit} if commit != "unknown" else {})}


@contextmanager
def model_run(model: str, seed: int, checkpoint_sha: str, tags: dict | None = None,
              stage: str = "vaebench", span: tuple[int, int] | None = None
              ) -> Iterator[Run | None]:
    """The MLflow run of a trained model (created on first use); None if MLflow fails
    or its server is unreachable. A sqlite store stays locked for this process while
    the run is open (see :func:`store_lock`).

    The stage that creates the run names its source (``stage``) and, with ``span``
    (start and end, ms since the epoch, as the stage's files record them), sets the
    run's start and end to the work itself rather than to the logging; later stages
    add to the run without moving its times, so a replay gives the same times."""
    if not reachable():
        yield None
        return
    with ExitStack() as stack:
        locked = False
        with _best_effort("lock of the store"):
            stack.enter_context(store_lock())
            locked = True
        if not locked:
            yield None
            return
        with _open_run(model, seed, checkpoint_sha, tags, stage, span) as handle:
            yield handle


@contextmanager
def _open_run(model: str, seed: int, checkpoint_sha: str, tags: dict | None, stage: str,
              span: tuple[int, int] | None) -> Iterator[Run | None]:
    handle, finished = None, False
    with _best_effort("start of run"):
        client = _client()
        exp_id = _experiment_id(client)
        key = run_key(model, seed, checkpoint_sha)
        found = _retrying(client.search_runs, [exp_id],
                          filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'", max_results=1)
        base_tags = {RUN_KEY_TAG: key, "model": model, "seed": seed,
                     "git_commit": git_commit(),
                     "dvc_experiment": os.environ.get("DVC_EXP_NAME", "workspace"),
                     **source_tags(stage), **(tags or {})}
        if found:
            handle = Run(client, found[0].info.run_id)
            handle.set_tags({k: v for k, v in base_tags.items() if k not in found[0].data.tags})
            finished = found[0].info.status == "FINISHED"
        else:
            run = _retrying(client.create_run, exp_id, run_name=f"{model}-seed{seed}",
                            start_time=span[0] if span else None,
                            tags={k: str(v) for k, v in base_tags.items()})
            handle = Run(client, run.info.run_id)
    if handle is None:
        yield None
        return
    yield handle
    if finished:        # its times are those of the stage that made it
        return
    with _best_effort("end of run"):
        _retrying(handle.client.set_terminated, handle.run_id,
                  end_time=span[1] if span else None)


@contextmanager
def suite_run(name: str, tags: dict | None = None, key: str = "suite", stage: str = "report",
              span: tuple[int, int] | None = None) -> Iterator[Run | None]:
    """A suite-level run (the report), keyed by ``name`` and ``key`` (e.g. a digest of the
    results, so each pipeline run with different results gets its own run)."""
    with model_run(name, 0, key, tags={"kind": "suite", **(tags or {})}, stage=stage,
                   span=span) as run:
        yield run


def run_count() -> int:
    """Runs in the suite's experiment (0 when it does not exist yet)."""
    client = _client()
    exp = _retrying(client.get_experiment_by_name, EXPERIMENT)
    if exp is None:
        return 0
    return len(_retrying(client.search_runs, [exp.experiment_id], max_results=50000))
