"""The report stage as DVC runs it: the real dvc.yaml's ``report`` stage and top-level
``plots:`` in a scratch repository holding fixture metrics files; ``dvc plots show``
renders the comparisons and ``dvc exp show --csv`` lists the headline metrics."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaebench.config import load_config

pytestmark = pytest.mark.slow   # runs `dvc repro` and other dvc commands
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
EVALUATE = {"loglik": ["mnist_vae", "mnist_vae_gaussdec", "dsprites_vae"],
            "disentangle": ["dsprites_vae", "dsprites_beta_vae"],
            "robustness": ["mnist_ae", "mnist_vae", "dsprites_vae"]}


def _run(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo / "src")}
    env.pop("DVC_ROOT", None)
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory, copy_project):
    import importlib.util
    repo = copy_project(tmp_path_factory.mktemp("dvcreport") / "repo")
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {name: pipeline["stages"][name] for name in ("code", "report")},
         "plots": pipeline["plots"]},   # code: the report's dep on its code fingerprint
        sort_keys=False))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update(profile="tiny", seeds=[0, 1], evaluate=EVALUATE)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    spec = importlib.util.spec_from_file_location("report_fixtures_dvc",
                                                  Path(__file__).with_name("conftest.py"))
    fixtures = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fixtures
    spec.loader.exec_module(fixtures)
    fixtures.write_fixture_reports(repo / "reports", load_config(repo / "params.yaml"))
    (repo / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "report"],
                ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r"]):
        _run(repo, *cmd)
    return repo


def test_dvc_plots_show_renders_every_comparison_by_model(repo):
    out = json.loads(_run(repo, "dvc", "plots", "show", "--json"))
    assert not out.get("errors"), out.get("errors")
    declared = [next(iter(p)) for p in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]]
    assert len(declared) == 3
    for title in declared:
        (plot,) = out["data"][title]
        values = plot["content"]["data"]["values"]
        assert values, f"{title}: no data"
        assert plot["content"]["spec"]["encoding"]["color"]["field"] == "model"
        models = {v["model"] for v in values}
        if "Training" in title:
            assert models == {"mnist_ae", "mnist_vae", "mnist_vae_gaussdec", "dsprites_vae",
                              "dsprites_beta_vae"}
        elif "K" in title:
            assert models == set(EVALUATE["loglik"])
        else:
            assert models == set(EVALUATE["robustness"])
        if "Robustness" not in title:
            # the Gaussian-density model gets a facet of its own: no shared y axis with
            # the Bernoulli models of its dataset
            panels = {}
            for v in values:
                panels.setdefault(v["model"], set()).add(v["panel"])
            assert len(panels["mnist_vae_gaussdec"]) == len(panels["mnist_vae"]) == 1
            assert panels["mnist_vae_gaussdec"] != panels["mnist_vae"]


def test_dvc_exp_show_lists_the_headline_metrics(repo):
    rows = list(csv.DictReader(io.StringIO(_run(repo, "dvc", "exp", "show", "--csv"))))
    assert rows
    head = json.loads((repo / "reports" / "headline.json").read_text())["headline"]
    columns = set(rows[0])
    for model, stages in head.items():
        for stage, values in stages.items():
            for name in values:
                assert any(c.endswith(f"headline.{model}.{stage}.{name}") for c in columns), \
                    f"{model}.{stage}.{name} not in dvc exp show"
    workspace = next(r for r in rows if r["Experiment"] == "workspace" or
                     r.get("rev") == "workspace")
    col = next(c for c in columns if c.endswith("headline.mnist_vae.loglik.elbo"))
    assert float(workspace[col]) == pytest.approx(head["mnist_vae"]["loglik"]["elbo"])


def test_the_reports_exp_show_filter_keeps_only_the_headline(repo):
    out = _run(repo, "dvc", "exp", "show", "--csv", "--drop", ".*", "--keep",
               "Experiment|headline")
    columns = next(csv.reader(io.StringIO(out)))
    assert columns[0] == "Experiment" and len(columns) > 1
    assert all(c.startswith("headline.") for c in columns[1:])


def test_second_repro_is_a_no_op(repo):
    out = _run(repo, "dvc", "repro", "report")
    assert "Running stage" not in out
