"""Parallel sweeps against the shared tracking server (README, "Parallel sweeps"):
PostgreSQL and `mlflow server` on loopback (scripts/mlflow_server.sh), a tiny-profile copy
of the project with two cheap models, experiments queued with `dvc exp run --queue` and
run by `dvc queue start -j 2`. Black-box: the tests run dvc and the CLI, then read the
server, PostgreSQL and the experiments' own files -- however the stages mirror.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mnist_ppca", "mnist_linear_vae")      # the cheapest to train and evaluate
GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@t")


def _run(repo: Path, *args: str, env: dict, timeout: int = 1800) -> str:
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def client_env(repo: Path, uri: str, experiment: str) -> dict:
    """What a user's shell holds: the venv first on PATH and MLFLOW_TRACKING_URI (queue
    workers inherit both from `dvc queue start`); an MLflow experiment per test."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo / "src"), "MLFLOW_TRACKING_URI": uri,
           "VAEBENCH_EXPERIMENT": experiment, "OMP_NUM_THREADS": "1"}
    env.pop("DVC_ROOT", None)
    env.pop("DVC_EXP_NAME", None)
    return env


def make_repo(repo: Path, copy_project, narrow_params, env: dict) -> Path:
    """A git + DVC copy of the project on the tiny profile with only MODELS (in the loglik
    and samplequality lists) and their dataset, its baseline reproduced."""
    copy_project(repo)
    params = narrow_params(yaml.safe_load((repo / "params.yaml").read_text()), MODELS)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    # the report stage depends on this folder, which only disentangle stages create
    placeholder = repo / "reports" / "figures" / "disentangle" / ".gitkeep"
    placeholder.parent.mkdir(parents=True)
    placeholder.touch()
    _run(repo, "git", "init", "-q", env=env)
    _run(repo, *GIT, "add", "-A", env=env)
    _run(repo, *GIT, "commit", "-qm", "init", env=env)
    _run(repo, "dvc", "init", "-q", env=env)
    _run(repo, "dvc", "repro", env=env)
    _run(repo, *GIT, "add", "-A", env=env)
    _run(repo, *GIT, "commit", "-qm", "baseline", env=env)
    return repo


def queue_sweep(repo: Path, env: dict, prefix: str, seeds, jobs: int, *settings: str
                ) -> list[str]:
    """Queue one experiment per seed (named <prefix><seed>, with ``-S`` ``settings``)
    and start `jobs` workers."""
    names = [f"{prefix}{seed}" for seed in seeds]
    for name, seed in zip(names, seeds):
        sets = [a for s in (f"seeds=[{seed}]", *settings) for a in ("-S", s)]
        _run(repo, "dvc", "exp", "run", "--queue", "-n", name, *sets, env=env)
    # not into a pipe: the workers it starts inherit its stdout and stderr, so reading
    # them to the end (capture_output) would wait for the whole queue
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=repo, env=env,
                              stdout=out, stderr=subprocess.STDOUT, timeout=600)
        out.seek(0)
        assert proc.returncode == 0, f"dvc queue start failed:\n{out.read()}"
    return names


def wait_for_queue(repo: Path, env: dict, timeout_s: float = 2400, poll_s: float = 10) -> float:
    """Wait until nothing is queued or running and every worker has exited (a worker
    left over would run the next test's experiments with this test's environment);
    return when the queue was first seen drained (time.monotonic())."""
    deadline, drained = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        out = _run(repo, "dvc", "queue", "status", env=env)
        states = [row.split()[-1] for row in out.splitlines() if row.strip()]
        if "Queued" not in states and "Running" not in states:
            drained = drained or time.monotonic()
            failed = [row.split()[1] for row in out.splitlines() if row.endswith("Failed")]
            assert not failed, out + _run(repo, "dvc", "queue", "logs", failed[0], env=env)
            if "Worker status: 0 active, 0 idle" in out:
                return drained
        time.sleep(poll_s)
    raise AssertionError(f"the queue did not finish within {timeout_s} s:\n{out}")


def experiment_revs(repo: Path, env: dict) -> dict[str, str]:
    """Experiment name -> its commit (DVC keeps experiments under refs/exps/)."""
    out = _run(repo, "git", "for-each-ref", "refs/exps", "--format=%(refname) %(objectname)",
               env=env)
    return {ref.rsplit("/", 1)[1]: sha for ref, sha in (line.split() for line in out.splitlines())
            if not ref.endswith(("/celery", "/stash"))}


def file_at(repo: Path, rev: str, path: str, env: dict) -> dict:
    return json.loads(_run(repo, "git", "show", f"{rev}:{path}", env=env))


def numbers(block: dict, prefix: str) -> dict[str, float]:
    """The numeric leaves of a metrics block, keyed as MLflow metric names
    (``<prefix>/a/b``)."""
    out: dict[str, float] = {}
    for key, value in block.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            out.update(numbers(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def runs_of(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=10000)


def check_runs(repo: Path, env: dict, uri: str, experiment: str, revs: dict[str, str]) -> list:
    """Each experiment of ``revs`` has exactly one run per model (its seed) and one suite
    run, tagged with its name; every number of its metrics files is on its run."""
    runs = runs_of(uri, experiment)
    model_runs = {}
    for run in runs:
        if run.data.tags.get("kind") != "suite":
            key = (run.data.tags["model"], run.data.tags["seed"], run.data.tags["dvc_experiment"])
            assert key not in model_runs, f"duplicate run for {key}"
            model_runs[key] = run
    suites = sorted(r.data.tags["dvc_experiment"] for r in runs if r.data.tags.get("kind") == "suite")
    assert suites == sorted(revs), suites
    expected = {}
    for name, rev in revs.items():
        (seed,) = yaml.safe_load(_run(repo, "git", "show", f"{rev}:params.yaml", env=env))["seeds"]
        for model in MODELS:
            expected[(model, str(seed), name)] = rev
    assert sorted(model_runs) == sorted(expected)
    for (model, seed, name), rev in expected.items():
        run = model_runs[(model, seed, name)]
        assert run.info.status == "FINISHED", (model, seed, name, run.info.status)
        for stage, prefix in (("train", "final"), ("loglik", "loglik")):
            block = file_at(repo, rev, f"reports/metrics/{stage}/{model}.json", env)["seeds"][seed]
            want = numbers(block, prefix)
            assert want, (stage, model)
            for key, value in want.items():
                got = run.data.metrics.get(key)
                assert got == value or (math.isnan(value) and math.isnan(got)), \
                    f"{name} {model} seed {seed}: {key} = {got} in MLflow, {value} in the file"
    return runs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, copy_project, narrow_params, tracking_server):
    """The server, and a project copy whose baseline was reproduced against it."""
    with tracking_server() as server:
        server.start()
        repo = tmp_path_factory.mktemp("sweep") / "repo"
        make_repo(repo, copy_project, narrow_params, client_env(repo, server.uri, "baseline"))
        yield SimpleNamespace(repo=repo, server=server,
                              env=lambda experiment: client_env(repo, server.uri, experiment))


def test_four_queued_experiments_on_two_workers_land_once_each_in_the_server(sweep, tmp_path):
    import dvc.api
    import mlflow.artifacts
    repo, server, env = sweep.repo, sweep.server, sweep.env("sweep")
    started = time.monotonic()
    names = queue_sweep(repo, env, "sweep", [1, 2, 3, 4], jobs=2)
    print(f"4 experiments, -j 2: {wait_for_queue(repo, env) - started:.0f} s")
    revs = {name: rev for name, rev in experiment_revs(repo, env).items() if name in names}
    assert sorted(revs) == sorted(names)
    runs = check_runs(repo, env, server.uri, "sweep", revs)
    assert len(runs) == len(names) * (len(MODELS) + 1)
    print(f"runs expected {len(names) * (len(MODELS) + 1)}, present {len(runs)}")
    # the runs are rows of PostgreSQL ...
    [(count,)] = server.query("SELECT count(*) FROM runs r JOIN experiments e "
                              "ON r.experiment_id = e.experiment_id WHERE e.name = %s "
                              "AND r.lifecycle_stage = 'active'", "sweep")
    assert count == len(runs)
    # ... and a checkpoint comes back through the server, the experiment's file byte for byte
    run = next(r for r in runs if r.data.tags.get("dvc_experiment") == names[0]
               and r.data.tags.get("model") == MODELS[0])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")    # proxied by the server
    seed = run.data.tags["seed"]
    got = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                              artifact_path=f"checkpoint/seed{seed}.pt",
                                              dst_path=str(tmp_path), tracking_uri=server.uri)
    want = dvc.api.read(f"models/{MODELS[0]}/seed{seed}.pt", repo=str(repo),
                        rev=revs[names[0]], mode="rb")
    assert Path(got).read_bytes() == want


def test_a_server_outage_loses_no_result_and_the_replay_brings_runs_in_once(sweep):
    repo, server, env = sweep.repo, sweep.server, sweep.env("outage")
    names = queue_sweep(repo, env, "outage", [5, 6], jobs=2)
    server.kill_mlflow()          # a crash before the sweep's stages log anything
    wait_for_queue(repo, env)     # every experiment succeeds without the server ...
    for name in names:            # ... and says so
        log = _run(repo, "dvc", "queue", "logs", name, env=env)
        assert f"MLflow tracking server {server.uri} is unreachable" in log, log
    revs = {name: rev for name, rev in experiment_revs(repo, env).items() if name in names}
    assert sorted(revs) == sorted(names)
    for name, rev in revs.items():   # the results are in the experiments' commits
        seed = name.removeprefix("outage")
        for model in MODELS:
            for stage in ("train", "loglik"):
                metrics = file_at(repo, rev, f"reports/metrics/{stage}/{model}.json", env)
                assert list(metrics["seeds"]) == [seed]
    server.start()                # PostgreSQL stayed up; MLflow comes back on the same data
    assert runs_of(server.uri, "outage") == []
    try:
        counts = []
        for name in [*names, names[0]]:        # the first one twice: the replay is idempotent
            _run(repo, "dvc", "exp", "apply", name, env=env)
            for model in MODELS:
                assert (repo / "models" / model / f"seed{name.removeprefix('outage')}.pt").is_file()
            _run(repo, "vaebench", "mlflow-sync", env={**env, "DVC_EXP_NAME": name})
            counts.append(len(runs_of(server.uri, "outage")))
        print(f"runs after each replay: {counts}")
        per_exp = len(MODELS) + 1
        assert counts == [per_exp, 2 * per_exp, 2 * per_exp]
        check_runs(repo, env, server.uri, "outage", revs)
    finally:                      # the baseline back in the workspace
        _run(repo, "git", "reset", "-q", "--hard", env=env)
        _run(repo, "dvc", "checkout", "--force", env=env)
