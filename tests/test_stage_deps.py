"""Each stage's code deps follow the code: dvc.yaml names one fingerprint file per stage
(per model for the per-model stages), written by ``vaebench code`` from the stage's import
closure (vaebench.codedeps), so a new model file or an edit to one family reruns exactly
the stages that run that code.
"""
from __future__ import annotations

import ast
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaebench import cli, codedeps

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
BIN = Path(sys.executable).parent
MODELS_DIR = "src/vaebench/models"
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
SCRATCH = '''from typing import Literal

from vaebench.models.vae import VAE, VAEConfig


class ScratchConfig(VAEConfig):
    family: Literal["scratch_vae"] = "scratch_vae"


class Scratch(VAE):
    Config = ScratchConfig


MODEL = Scratch
'''


def _dispatch() -> dict[str, str]:
    return {name: p.get_default("func").__name__ for name, p in cli._subcommands().items()}


def _fingerprints(families: dict[str, str], src: Path = SRC) -> dict[str, dict]:
    return codedeps.fingerprints(_dispatch(), families, src)


def _files(fp: dict) -> set[str]:
    return set(fp["files"])


def _family_files(src: Path = SRC) -> set[str]:
    return {f"{MODELS_DIR}/{f}.py" for f in codedeps.family_names(src)}


# --- dvc.yaml ---------------------------------------------------------------------------

def _deps(stage: dict) -> list[str]:
    body = stage.get("do", stage)
    return [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]


@pytest.mark.parametrize("name", [s for s in PIPELINE if s != "code"])
def test_each_stage_depends_on_its_own_fingerprint_and_on_no_source_file(name):
    stage = PIPELINE[name]
    deps = _deps(stage)
    assert not [d for d in deps if d.startswith("src/")], f"{name}: hand-written code deps"
    loop = "${key}" if stage.get("foreach") == "${models}" else "${item}"
    want = (f"reports/code/{name}/{loop}.json" if name in codedeps.MODEL_STAGES
            else f"reports/code/{name}.json")
    assert [d for d in deps if d.startswith("reports/code")] == [want]
    argv = shlex.split(" ".join(stage.get("do", stage)["cmd"].split()))
    assert argv[:2] == ["vaebench", codedeps.STAGE_COMMANDS[name]]


def test_the_code_stage_hashes_the_package_and_the_models_block():
    stage = PIPELINE["code"]
    assert stage["cmd"] == "vaebench code --out reports/code"
    assert _deps(stage) == ["src/vaebench"] and stage["params"] == ["models"]
    assert stage["outs"] == [{"reports/code": {"cache": False}}]
    assert set(PIPELINE) == set(codedeps.STAGE_COMMANDS) | {"code"}


# --- the closures ---------------------------------------------------------------------

def test_a_model_stage_runs_its_own_family_and_no_other():
    fps = _fingerprints({"b": "beta_vae", "a": "ae"})
    beta, ae = _files(fps["train/b.json"]), _files(fps["train/a.json"])
    assert {f"{MODELS_DIR}/vae.py", f"{MODELS_DIR}/beta_vae.py", "src/vaebench/train.py",
            "src/vaebench/cli.py", f"{MODELS_DIR}/__init__.py"} <= beta
    assert f"{MODELS_DIR}/ae.py" not in beta
    assert f"{MODELS_DIR}/ae.py" in ae and f"{MODELS_DIR}/vae.py" not in ae
    assert "src/vaebench/report/stage.py" not in beta     # another subcommand's module
    assert "src/vaebench/evaluate/disentanglement/_common.py" in _files(fps["disentangle/b.json"])


def test_only_check_runs_every_family_and_each_stage_only_what_it_imports():
    families = codedeps.family_names()
    assert {"ae", "vae", "miwae", "ciwae", "piwae", "tdvae"} <= set(families)
    assert "base" not in families and "nets" not in families
    fps = _fingerprints({f"m_{f}": f for f in families})
    every = _family_files()
    assert every <= _files(fps["check.json"])
    for rel, fp in fps.items():
        if rel == "check.json":
            continue
        own = ({p.relative_to(ROOT).as_posix() for p in codedeps.family_closure(fp["family"])}
               if "family" in fp else set())
        assert _files(fp) & every == own & every, rel


def test_the_walker_skips_type_checking_imports_and_follows_constant_dynamic_ones():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from vaebench import train\nelse:\n    from . import io\n")
    names = codedeps.imported_names(tree, "vaebench")
    assert "vaebench.io" in names and "vaebench.train" not in names
    tree = ast.parse("import importlib\ndef f():\n    importlib.import_module('vaebench.runs')\n")
    assert "vaebench.runs" in codedeps.imported_names(tree, "vaebench")


def test_only_the_registry_imports_a_computed_module_name():
    """Any other would hide code from the closures; the registry's target (the model's
    family) is added to each model stage's closure by name."""
    hidden = [f"{path.relative_to(ROOT)}:{node.lineno}"
              for path in sorted((SRC / "vaebench").rglob("*.py"))
              for node in ast.walk(ast.parse(path.read_text()))
              if (arg := codedeps.dynamic_import(node)) is not None
              and not isinstance(arg, ast.Constant)]
    assert [h.split(":")[0] for h in hidden] == [f"{MODELS_DIR}/__init__.py"], hidden


# --- the fingerprints change iff the code does -----------------------------------------

def test_fingerprints_follow_edits_and_new_family_files(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    families = {"b": "beta_vae", "a": "ae"}
    before = _fingerprints(families, src)
    (src / "vaebench/models/scratch_vae.py").write_text(SCRATCH)
    added = _fingerprints(families, src)
    assert "scratch_vae" in codedeps.family_names(src)
    assert {k for k in before if added[k] != before[k]} == {"check.json"}
    vae = src / "vaebench/models/vae.py"
    vae.write_text(vae.read_text() + "# a comment\n")
    edited = _fingerprints(families, src)
    changed = {k for k in added if edited[k] != added[k]}
    assert changed == {"check.json"} | {f"{s}/b.json" for s in codedeps.MODEL_STAGES}


def _code(out: Path, params: Path = ROOT / "params.yaml") -> subprocess.CompletedProcess:
    script = ("import sys\nfrom vaebench.cli import main\n"
              f"rc = main(['--params', {str(params)!r}, 'code', '--out', {str(out)!r}])\n"
              "assert 'torch' not in sys.modules, 'vaebench code imported torch'\n"
              "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=60)


def test_vaebench_code_writes_the_same_bytes_twice_without_torch(tmp_path):
    runs = []
    for out in (tmp_path / "one", tmp_path / "two"):
        proc = _code(out)
        assert proc.returncode == 0, proc.stderr
        runs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
                     if p.is_file()})
    assert runs[0] == runs[1]
    models = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]
    want = {f"{s}/{m}.json" for s in codedeps.MODEL_STAGES for m in models} | {
        f"{s}.json" for s in codedeps.STAGE_COMMANDS if s not in codedeps.MODEL_STAGES}
    assert set(runs[0]) == want
    fp = json.loads(runs[0]["train/mnist_vae.json"])
    assert fp["family"] == "vae" and f"{MODELS_DIR}/vae.py" in fp["files"]


def test_vaebench_code_names_an_unknown_family(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"models": {"m": {"family": "nope"}}}))
    proc = _code(tmp_path / "out", params)
    assert proc.returncode == 2
    assert "models.m.family" in proc.stderr and "'nope'" in proc.stderr and "vae" in proc.stderr
    assert not (tmp_path / "out").exists()


# --- in a git + DVC copy of the project --------------------------------------------------

TRAINED = ("mnist_ae", "mnist_beta_vae")   # ae.py does not import vae.py; beta_vae.py does


def _run(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("DVC_ROOT", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _changed(repo: Path) -> set[str]:
    status = json.loads(_run(repo, "dvc", "status", "--json", "--with-deps",
                             *[f"train@{m}" for m in TRAINED]) or "{}")
    print("dvc status:", json.dumps(status, indent=1))     # the evidence, with pytest -s
    return set(status)


@pytest.mark.slow
def test_a_new_model_file_reruns_no_stage_and_an_edit_only_its_users(tmp_path, copy_project,
                                                                     narrow_params):
    repo = copy_project(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(narrow_params(params, TRAINED),
                                                     sort_keys=False))
    (repo / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    _run(repo, "git", "init", "-q")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "repro", *[f"train@{m}" for m in TRAINED])
    assert _changed(repo) == set()

    # (a) a new family file: only `code` sees it; rerunning, only `check` (which loads
    # every family) follows, and no training
    (repo / MODELS_DIR / "scratch_vae.py").write_text(SCRATCH)
    assert _changed(repo) == {"code"}
    out = _run(repo, "dvc", "repro", *[f"train@{m}" for m in TRAINED])
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    print("dvc repro ran:", sorted(ran))
    assert ran == {"code", "check"}, out
    assert _changed(repo) == set()

    # (b) an edit to vae.py: the stages that run it, and no other
    vae = repo / MODELS_DIR / "vae.py"
    vae.write_text(vae.read_text() + "# an edit\n")
    _run(repo, "dvc", "repro", "code")
    assert _changed(repo) == {"check", "train@mnist_beta_vae"}
