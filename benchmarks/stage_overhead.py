"""Fixed cost of one ``vaebench <stage>`` process, per stage kind, beyond the stage's own work.

Runs every stage kind once on the tiny profile in a temporary project (check,
prepare, train of a closed-form model and of a gradient-trained one, loglik,
robustness, disentangle, report), each as its own process, and splits the
process's wall and CPU seconds into

- ``import``: interpreter start, the CLI and the stage's module;
- ``compute``: the stage function itself, less its MLflow mirroring;
- ``mirror``: the stage's MLflow mirroring (``vaebench.mirror.*``) -- before the
  pipeline's ``mlflow`` stage took it over, every stage paid it; now only
  ``mlflow_sync`` (that stage, mirroring the other stages' files at once) does;
- ``exit``: from the stage's return to the end of the process (atexit hooks,
  thread joins, module teardown);
- ``fixed`` = total - compute (what every stage pays however small its work).

CPU seconds (user + system of the process and its children) are steadier than wall
time on a shared machine; read those. ``compute`` includes whatever the stage
imports lazily on first use (e.g. ``torch._dynamo`` by the first Adam); the
``dynamo`` column says whether it was imported.

Usage: OMP_NUM_THREADS=1 python benchmarks/stage_overhead.py [--keep DIR] [--src DIR]
[--params FILE] (``--src``/``--params``: another revision's ``src`` folder and
params.yaml, e.g. ``git archive <rev> src params.yaml | tar -x``, to compare a revision
before and after; default: this checkout's.)
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# kind -> (stage module, stage function, vaebench argv)
STAGES = {
    "check": (None, None, ["check", "--out", "reports/params_check.json"]),
    "prepare": ("vaebench.data", "prepare_stage",
                ["prepare", "mnist", "--raw", "data/raw", "--out", "data/prepared/mnist"]),
    "prepare_dsprites": ("vaebench.data", "prepare_stage",
                         ["prepare", "dsprites", "--raw", "data/raw", "--out",
                          "data/prepared/dsprites"]),
    "train_closed_form": ("vaebench.train", "train_stage",
                          ["train", "mnist_ppca", "--data", "data/prepared/mnist",
                           "--out", "models/mnist_ppca",
                           "--metrics", "reports/metrics/train/mnist_ppca.json",
                           "--plots", "reports/plots/train/mnist_ppca",
                           "--figures", "reports/figures/train/mnist_ppca"]),
    "train_adam": ("vaebench.train", "train_stage",
                   ["train", "dsprites_ae", "--data", "data/prepared/dsprites",
                    "--out", "models/dsprites_ae",
                    "--metrics", "reports/metrics/train/dsprites_ae.json",
                    "--plots", "reports/plots/train/dsprites_ae",
                    "--figures", "reports/figures/train/dsprites_ae"]),
    "loglik": ("vaebench.evaluate.loglik", "loglik_stage",
               ["loglik", "mnist_ppca", "--models", "models/mnist_ppca", "--data",
                "data/prepared", "--out", "reports/metrics/loglik/mnist_ppca.json",
                "--plots", "reports/plots/loglik/mnist_ppca.csv"]),
    "robustness": ("vaebench.evaluate.robustness", "robustness_stage",
                   ["robustness", "dsprites_ae", "--models", "models/dsprites_ae", "--data",
                    "data/prepared", "--out", "reports/metrics/robustness/dsprites_ae.json",
                    "--plots", "reports/plots/robustness/dsprites_ae"]),
    "disentangle": ("vaebench.evaluate.disentangle", "disentangle_stage",
                    ["disentangle", "dsprites_ae", "--models", "models/dsprites_ae", "--data",
                     "data/prepared", "--raw", "data/raw",
                     "--out", "reports/metrics/disentangle/dsprites_ae.json",
                     "--figures", "reports/figures/disentangle/dsprites_ae"]),
    "report": ("vaebench.report.stage", "report_stage",
               ["report", "--metrics", "reports/metrics", "--plots", "reports/plots",
                "--figures", "reports/figures", "--figures-out", "reports/figures/report",
                "--out", "reports"]),
    # the pipeline's last stage: every stage's files into MLflow, in one process
    "mlflow_sync": ("vaebench.mirror", "sync", ["mlflow-sync"]),
}
MIRRORS = ("train", "loglik", "robustness", "disentangle", "report")


def _cpu() -> float:
    return time.process_time()


def child(kind: str, timings: Path) -> None:
    """Run one stage in this process, recording when each phase ends."""
    marks: dict = {"mirror_wall": 0.0, "mirror_cpu": 0.0}

    def at_exit():   # registered first, so it runs after every other atexit hook
        marks["atexit"] = (time.time(), _cpu())
        timings.write_text(json.dumps(marks))
    atexit.register(at_exit)

    import importlib
    from vaebench import cli
    module, func, argv = STAGES[kind]
    if module is not None:
        mod = importlib.import_module(module)
        from vaebench import mirror
        for name in MIRRORS if kind != "mlflow_sync" else ():   # (its compute is mirroring)
            setattr(mirror, name, _timed(getattr(mirror, name), marks, "mirror"))
        stage = getattr(mod, func)

        def timed_stage(*args, **kwargs):
            marks["start"] = (time.time(), _cpu())
            try:
                return stage(*args, **kwargs)
            finally:
                marks["end"] = (time.time(), _cpu())
        setattr(mod, func, timed_stage)
    else:   # check: the whole of main after the import is the stage
        marks["start"] = (time.time(), _cpu())
    sys.argv = ["vaebench", *argv]
    code = cli.main()     # as the console script calls it
    if module is None:
        marks["end"] = (time.time(), _cpu())
    marks["dynamo"] = "torch._dynamo" in sys.modules
    sys.stdout.flush()
    if code:
        sys.exit(code)


def _timed(fn, marks: dict, key: str):
    def wrapper(*args, **kwargs):
        w, c = time.time(), _cpu()
        try:
            return fn(*args, **kwargs)
        finally:
            marks[f"{key}_wall"] += time.time() - w
            marks[f"{key}_cpu"] += _cpu() - c
    return wrapper


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def make_project(tmp: Path, params: Path = ROOT / "params.yaml") -> None:
    raw = yaml.safe_load(params.read_text())
    raw["profile"], raw["seeds"] = "tiny", [0]
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp / "data").mkdir()
    (tmp / "data" / "raw").symlink_to(ROOT / "data" / "raw")
    (tmp / ".dvc").mkdir()      # the project root for the MLflow store (tmp/mlflow.db)


def run_stage(kind: str, tmp: Path, src: Path) -> dict:
    timings = tmp / f".timings-{kind}.json"
    env = {**os.environ, "PYTHONPATH": str(src), "DVC_ROOT": str(tmp)}
    env.pop("MLFLOW_TRACKING_URI", None)
    c0, w0 = _children_cpu(), time.time()
    proc = subprocess.run([sys.executable, __file__, "--child", kind, str(timings)], cwd=tmp,
                          env=env, capture_output=True, text=True)
    wall, cpu = time.time() - w0, _children_cpu() - c0
    if proc.returncode:
        sys.exit(f"{kind} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    m = json.loads(timings.read_text())
    # CPU of the child at atexit (process_time starts at the process start)
    compute_w, compute_c = (m["end"][0] - m["start"][0] - m["mirror_wall"],
                            m["end"][1] - m["start"][1] - m["mirror_cpu"])
    return {"kind": kind, "wall": wall, "cpu": cpu,
            "import_w": m["start"][0] - w0, "import_c": m["start"][1],
            "compute_w": compute_w, "compute_c": compute_c,
            "mirror_w": m["mirror_wall"], "mirror_c": m["mirror_cpu"],
            "exit_w": w0 + wall - m["atexit"][0],
            "exit_c": cpu - m["atexit"][1],
            "fixed_w": wall - compute_w, "fixed_c": cpu - compute_c, "dynamo": m["dynamo"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2, metavar=("KIND", "TIMINGS"), help=argparse.SUPPRESS)
    ap.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the vaebench sources to run")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                    help="the params.yaml of those sources (another revision's, with --src)")
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], Path(args.child[1]))
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="stage-overhead-"))
    tmp.mkdir(parents=True, exist_ok=True)
    make_project(tmp, args.params)
    rows = []
    try:
        for kind in STAGES:
            rows.append(run_stage(kind, tmp, args.src.resolve()))
            r = rows[-1]
            print(f"{kind}: {r['cpu']:.2f} CPU s, {r['wall']:.2f} s wall", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.src}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; CPU s (wall s "
          f"in brackets); fixed = total - compute")
    cols = ("total", "import", "compute", "mirror", "exit", "fixed")
    print(f"| stage | {' | '.join(cols)} | dynamo |")
    print("|---" * (len(cols) + 2) + "|")
    for r in rows:
        cells = [f"{r['cpu']:.2f} ({r['wall']:.2f})"] + [
            f"{r[c + '_c']:.2f} ({r[c + '_w']:.2f})" for c in cols[1:]]
        print(f"| {r['kind']} | {' | '.join(cells)} | {'yes' if r['dynamo'] else 'no'} |")


if __name__ == "__main__":
    main()
