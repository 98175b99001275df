"""Wall time of a 4-experiment sweep through DVC's queue with 1 worker and with 2.

Builds the tiny two-model project of tests/test_sweeps.py in a temporary folder
(the tiny profile, ``mnist_ppca`` and ``mnist_linear_vae``, train + loglik + report),
reproduces its baseline, then runs two sweeps of 4 experiments each (``-S seeds=[N]``,
other seeds for the second sweep so that DVC's run cache restores nothing):
``dvc queue start -j 1`` and ``dvc queue start -j 2``. Each worker gets
``cores / jobs`` threads (``-S threads=...``), as the README advises. A sweep's time
runs from the first ``dvc exp run --queue`` to the first ``dvc queue status`` that shows
nothing queued or running (polled every 5 s). Prints both times and their ratio.

The stages log into ``MLFLOW_TRACKING_URI`` when it is set (e.g. the shared server of
scripts/mlflow_server.sh), else into a sqlite store in the temporary folder.

Usage: python benchmarks/queue_sweep.py [--cores C] [--keep DIR]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    """One of the tests' modules, for its helpers (one definition of the sweep project)."""
    spec = importlib.util.spec_from_file_location(f"vaebench_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=os.cpu_count(),
                        help="cores shared by the workers (default: all)")
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    args = parser.parse_args()
    sweeps = _load(ROOT / "tests" / "test_sweeps.py")
    copy_project = _load(ROOT / "tests" / "conftest.py")._copy_project
    folder = args.keep or Path(tempfile.mkdtemp(prefix="vaebench-queue-sweep-"))
    repo = folder / "repo"
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{folder / 'mlflow.db'}"
    try:
        started = time.monotonic()
        sweeps.make_repo(repo, copy_project, sweeps.client_env(repo, uri, "queue-sweep"))
        print(f"baseline dvc repro: {time.monotonic() - started:.0f} s  (store: {uri})")
        times, env = {}, sweeps.client_env(repo, uri, "queue-sweep")
        for jobs, seeds in ((1, [1, 2, 3, 4]), (2, [5, 6, 7, 8])):
            threads = max(1, args.cores // jobs)
            started = time.monotonic()
            sweeps.queue_sweep(repo, env, f"j{jobs}s", seeds, jobs, f"threads={threads}")
            times[jobs] = sweeps.wait_for_queue(repo, env, poll_s=5) - started
            print(f"-j {jobs} ({threads} threads per worker): 4 experiments in "
                  f"{times[jobs]:.0f} s")
        print(f"-j 1 / -j 2: {times[1] / times[2]:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
