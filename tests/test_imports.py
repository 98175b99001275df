"""The CLI imports only what a stage uses: heavy libraries must not creep back into the
start-up of every ``vaebench`` process (issue 15: fixed cost per stage)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "mlflow", "sklearn", "matplotlib", "pandas", "scipy")

# Runs the CLI in a fresh interpreter, then prints which heavy top-level packages it loaded.
PROBE = """
import json, sys
from vaebench import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print(json.dumps({"code": code, "heavy": heavy, "dynamo": "torch._dynamo" in sys.modules}))
""" % (HEAVY,)


def _loaded(*argv: str, cwd: Path = ROOT) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_imports_nothing_heavy():
    loaded = _loaded("--help")
    assert loaded["code"] == 0
    assert loaded["heavy"] == []


def test_check_imports_torch_only(tmp_path):
    """``check`` (every stage's config load) builds every model of every profile: torch,
    and nothing else heavy -- not even ``torch._dynamo`` (~1.6 CPU s)."""
    loaded = _loaded("--params", str(ROOT / "params.yaml"), "check",
                     "--out", str(tmp_path / "check.json"), cwd=tmp_path)
    assert loaded["code"] == 0
    assert loaded["heavy"] == ["torch"]
    assert not loaded["dynamo"]
    assert json.loads((tmp_path / "check.json").read_text()) == {"valid": True}

