"""DVC's own cost per stage, apart from the stage's command, as the pipeline grows.

``make repro`` of the quick profile runs ~150 stages; the stages' own seconds (their
metrics files' ``time_s``) add up to about half of its wall time. This script measures
what DVC itself adds per stage, with commands that cost nothing (``true``): in a
temporary git + DVC project it declares N stages shaped like ours (a foreach over N
items, each with one data dep, a few code deps, a params dep and one output file), runs

- ``dvc repro`` from nothing (every stage runs: hashing, running, writing dvc.lock),
- ``dvc repro`` again (every stage is checked and skipped),
- ``dvc status``,

and prints seconds per stage for each N. A cost per stage that grows with N is DVC
rewriting or re-reading a dvc.lock that grows with the pipeline. ``--split K`` declares
the same N stages in K ``dvc.yaml`` files (K folders, one ``dvc.lock`` each), which DVC
runs as one project: the remedy to try if the growth is the lock's.

Usage: python benchmarks/dvc_overhead.py [--sizes 10 40 160] [--split 1 4] [--keep DIR]
(the dvc on PATH, or the one beside this Python).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODE_FILES = 12          # about what one of our stages lists (or its fingerprint files)


def _dvc() -> str:
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def _run(cwd: Path, *cmd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.perf_counter() - start


def make_project(root: Path, n: int, split: int = 1) -> None:
    root.mkdir(parents=True)
    _run(root, "git", "init", "-q")
    _run(root, _dvc(), "init", "-q")
    (root / "code").mkdir()
    for i in range(CODE_FILES):
        (root / "code" / f"m{i}.py").write_text(f"# module {i}\n" + "x = 1\n" * 200)
    (root / "data.bin").write_bytes(b"\0" * 1_000_000)
    for part in range(split):
        where = root if split == 1 else root / f"part{part}"
        where.mkdir(exist_ok=True)
        up = "" if split == 1 else "../"
        write_pipeline(where, range(part, n, split), up)


def write_pipeline(where: Path, indices, up: str) -> None:
    """One dvc.yaml (and its params.yaml) in ``where`` with the stages ``indices``."""
    items = "\n".join(f"  s{i:03d}: {{lr: 0.001, seed: {i}}}" for i in indices)
    (where / "params.yaml").write_text(f"items:\n{items}\n")
    deps = "\n".join(f"        - {up}code/m{i}.py" for i in range(CODE_FILES))
    (where / "dvc.yaml").write_text(f"""stages:
  work:
    foreach: ${{items}}
    do:
      cmd: mkdir -p out && echo ${{key}} > out/${{key}}.txt
      deps:
        - {up}data.bin
{deps}
      params:
        - items.${{key}}
      outs:
        - out/${{key}}.txt:
            cache: false
""")


def measure(base: Path, n: int, split: int) -> dict[str, float]:
    root = base / f"n{n}_split{split}"
    make_project(root, n, split)
    first = _run(root, _dvc(), "repro", "-q", "--all-pipelines")
    again = _run(root, _dvc(), "repro", "-q", "--all-pipelines")
    status = _run(root, _dvc(), "status", "-q")
    lock_lines = max(sum(1 for _ in lock.open()) for lock in root.rglob("dvc.lock"))
    return {"n": n, "split": split, "repro_s": first, "repro_per_stage_s": first / n,
            "skip_per_stage_s": again / n, "status_s": status, "lock_lines": lock_lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 40, 160])
    parser.add_argument("--split", type=int, nargs="+", default=[1],
                        help="dvc.yaml files the stages are spread over (one run per value)")
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="dvc_overhead_"))
    try:
        rows = [measure(base, n, k) for n in args.sizes for k in args.split]
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'stages':>6} {'files':>5} {'lock lines':>10} {'repro s':>8} {'s/stage':>8} "
          f"{'skip s/stage':>12} {'status s':>8}")
    for r in rows:
        print(f"{r['n']:>6} {r['split']:>5} {r['lock_lines']:>10} {r['repro_s']:>8.1f} "
              f"{r['repro_per_stage_s']:>8.3f} {r['skip_per_stage_s']:>12.3f} "
              f"{r['status_s']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
