"""End to end: the real dvc.yaml and params.yaml, shrunk to the tiny profile, in a temp copy.

One module-scoped repository: `dvc repro`, then a no-op repro, an experiment with
a changed kl_weight, and a queued experiment that must log into the same mlflow.db.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def _run(repo: Path, *args: str, timeout: int = 3000) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo / "src")}
    env.pop("MLFLOW_TRACKING_URI", None)   # the default store: <repo>/mlflow.db
    env.pop("DVC_ROOT", None)
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


# One model of each kind, so that every stage runs (each of every evaluation's lists is
# non-empty) and every kind of model goes through it: a deterministic autoencoder, VAEs
# on both image datasets, a closed-form model with an exact likelihood, a VQ model with a
# code prior, a sequence model. Every one of the 36 blocks runs through all its stages
# in `make repro` (quick profile); the tests of each family train it through the stage.
PIPELINE_MODELS = ("mnist_ae", "mnist_vae", "mnist_ppca", "mnist_vqvae", "dsprites_vae",
                   "dsprites_beta_vae", "moving_sprites_tdvae")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, copy_project):
    repo = copy_project(tmp_path_factory.mktemp("pipeline") / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["profile"] = "tiny"
    params["models"] = {m: params["models"][m] for m in PIPELINE_MODELS}
    params["evaluate"] = {stage: [m for m in names if m in PIPELINE_MODELS]
                          for stage, names in params["evaluate"].items()}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "repro")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "repro")
    return repo


def _params(repo):
    return yaml.safe_load((repo / "params.yaml").read_text())


def test_repro_writes_every_declared_output(repo):
    params = _params(repo)
    for dataset in params["datasets"]:
        assert (repo / "data" / "prepared" / dataset / "meta.json").is_file()
    check_stage_metrics(repo, params)


# --- what the stages' metrics files must hold (also applies to any profile's reports/) ---

SCORES = {"mig": ["mig"], "sap": ["sap"], "dci": ["disentanglement", "completeness"],
          "modularity": ["modularity"], "beta_vae": ["eval_accuracy"],
          "factor_vae": ["eval_accuracy"]}     # disentanglement scores, each in [0, 1]


def check_stage_metrics(repo: Path, params: dict) -> None:
    metrics = repo / "reports" / "metrics"
    seeds = {str(s) for s in params["seeds"]}
    for model, block in params["models"].items():
        m = _metrics(metrics / "train" / f"{model}.json", model, params)
        assert (m["family"], m["dataset"]) == (block["family"], block["dataset"]), model
        assert set(m["seeds"]) == seeds and m["n_params"] > 0, model
        for seed, run in m["seeds"].items():
            assert (repo / "models" / model / f"seed{seed}.pt").is_file()
            # finite, not signed: a density on continuous data (Gaussian decoders) can exceed 1
            assert math.isfinite(run["test"]["loss"]), (model, seed)
            if m["likelihood"] == "bernoulli":   # a probability of binary pixels: <= 1
                assert run["test"].get("elbo", -1.0) <= 0 <= run["test"].get("recon", 0.0)
    for model in params["evaluate"]["loglik"]:
        m = _metrics(metrics / "loglik" / f"{model}.json", model, params)
        for seed in seeds:
            _check_loglik(m["seeds"][seed], m["likelihood"], f"loglik {model} seed {seed}")
    for model in params["evaluate"]["disentangle"]:
        m = _metrics(metrics / "disentangle" / f"{model}.json", model, params)
        for seed in seeds:
            for metric, keys in SCORES.items():
                for key in keys:
                    value = m["seeds"][seed][metric][key]
                    assert 0 <= value <= 1, f"disentangle {model} seed {seed}: {metric}.{key}"
    for model in params["evaluate"]["robustness"]:
        m = _metrics(metrics / "robustness" / f"{model}.json", model, params)
        for seed in seeds:
            run = m["seeds"][seed]
            assert run["recon_err_clean"] >= 0 and 0 <= run["probe_acc_clean"] <= 1, model
            aucs = {k: v for k, v in run.items() if k.startswith("auc_")}
            assert aucs and all(math.isfinite(v) for v in aucs.values()), (model, aucs)
            assert all(0 <= v <= 1 for k, v in aucs.items() if "probe_acc" in k), (model, aucs)

    for model in params["evaluate"]["samplequality"]:
        m = _metrics(metrics / "samplequality" / f"{model}.json", model, params)
        fd = f"fd_{m['dataset']}classifier"
        for row in [m["floor"], *(m["seeds"][s][part] for s in seeds
                                  for part in ("samples", "reconstructions"))]:
            assert row[fd] >= 0 and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1, model


def _metrics(path: Path, model: str, params: dict) -> dict:
    m = json.loads(path.read_text())
    assert m["model"] == model and m["profile"] == params["profile"], path
    assert set(m["seeds"]) == {str(s) for s in params["seeds"]}, path
    return m


def _check_loglik(run: dict, likelihood: str, where: str) -> None:
    """log p_K >= ELBO and rises with K (paired differences over the same test points,
    up to 4 standard errors); below 0 for binary pixels; below the exact log p(x) where
    the model has one."""
    assert run["ks"] == sorted(set(run["ks"])) and run["k_max"] == run["ks"][-1], where
    assert set(run["log_p_hat"]) == {f"k{k}" for k in run["ks"]}, where
    elbo = run["elbo"]["mean"]
    assert math.isfinite(elbo) and run["kl"]["mean"] >= 0, where
    for k in run["ks"]:
        est = run["log_p_hat"][f"k{k}"]
        assert math.isfinite(est["mean"]), (where, k)
        assert est["minus_elbo"] >= -4 * est["minus_elbo_stderr"], (where, k, est)
        assert est["minus_elbo"] == pytest.approx(est["mean"] - elbo, abs=1e-6), (where, k)
        if "minus_prev" in est:
            assert est["minus_prev"] >= -4 * est["minus_prev_stderr"], (where, k, est)
        if likelihood == "bernoulli":
            assert est["mean"] <= 0 and elbo <= 0, (where, k)
    if "exact" in run:   # linear-Gaussian models: the bound is below the true log p(x)
        assert run["elbo"]["error"] <= 4 * run["elbo"]["error_stderr"], where
        assert run["elbo"]["error"] == pytest.approx(elbo - run["exact"]["mean"], abs=1e-6)


def _pagecheck():
    """tests/report/pagecheck.py: the independent checker of the report's pages."""
    import importlib.util
    name = "vaebench_tests_pagecheck"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parent / "report" / "pagecheck.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_report_reads_every_stage_and_is_self_contained(repo):
    import pandas as pd
    params = _params(repo)
    reports = repo / "reports"
    page = _pagecheck().check_html(reports / "index.html")
    assert page.sections == ["claims", "suite", "training", "likelihood", "disentanglement",
                             "robustness", "samplequality", "samples", "reproduce"]
    # every declared claim has a verdict in claims.json, and the page states the same counts
    from vaebench.claims import CLAIMS, VERDICTS
    verdicts = json.loads((reports / "claims.json").read_text())
    assert [c["id"] for c in verdicts["claims"]] == [c.id for c in CLAIMS]
    assert all(c["verdict"] in VERDICTS for c in verdicts["claims"])
    counts = verdicts["summary"]
    assert sum(counts.values()) == len(CLAIMS)
    assert (f"{counts['reproduced']} reproduced, {counts['not_reproduced']} not reproduced, "
            f"{counts['not_measured']} not measured") in "".join(page.text)
    images, _ = _pagecheck().check_markdown(reports / "report.md")
    assert len(images) == len(page.images) > 0
    results = pd.read_csv(reports / "results.csv", dtype={"seed": str})
    assert set(results["model"]) == set(params["models"])
    for stage, names in params["evaluate"].items():
        done = set(results[results.stage == stage]["model"])
        assert done == set(names), f"{stage}: report shows {done}, params list {names}"
    for model in params["models"]:   # every model's train figures are on the page
        for png in (reports / "figures" / "train" / model).glob("*.png"):
            assert any(p.endswith(f"train/{model}/{png.name}") for p in images)
    text = "".join(page.text)
    for stage in params["evaluate"]:
        if params["evaluate"][stage]:
            assert f"evaluate.{stage} in params.yaml is empty" not in text

    out = _run(repo, "dvc", "plots", "show", "--json")
    shown, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])   # stderr may follow
    assert not shown.get("errors"), shown.get("errors")
    top = [next(iter(p)) for p in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]]
    for title in top:
        (plot,) = shown["data"][title]
        assert plot["content"]["data"]["values"], f"dvc plots show: {title} has no data"
    header = _run(repo, "dvc", "exp", "show", "--csv").splitlines()[0].split(",")
    head = json.loads((reports / "headline.json").read_text())["headline"]
    for model, stages in head.items():
        for stage, values in stages.items():
            for name in values:
                assert any(c.endswith(f"headline.{model}.{stage}.{name}") for c in header), name


def test_second_repro_does_nothing_and_status_is_clean(repo):
    out = _run(repo, "dvc", "repro")
    assert "Running stage" not in out
    assert "up to date" in _run(repo, "dvc", "status")


def test_second_clone_pulls_every_output_and_reruns_nothing(repo, tmp_path):
    """A shared DVC remote (README, "Sharing results between machines"): what one clone
    pushed, a fresh clone pulls, and its `dvc repro` then runs no stage."""
    git = ("git", "-c", "user.name=t", "-c", "user.email=t@t")
    remote, clone = tmp_path / "dvc-remote", tmp_path / "clone"
    _run(repo, "dvc", "remote", "add", "-d", "shared", str(remote))
    _run(repo, *git, "add", "-A")          # the remote's config travels through git
    _run(repo, *git, "commit", "-qm", "shared DVC remote")
    assert "pushed" in _run(repo, "dvc", "push")
    _run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "models").exists()  # cached outputs are not in git
    _run(clone, "dvc", "pull")
    # imports write __pycache__/ under src/ on a user's machine; .dvcignore keeps it out of
    # the code's hash, else every stage depending on src/ would look changed
    _run(clone, sys.executable, "-m", "compileall", "-q", "src")
    assert any((clone / "src" / "vaebench").rglob("__pycache__"))
    assert "Data and pipelines are up to date" in _run(clone, "dvc", "status")
    out = _run(clone, "dvc", "repro")
    assert "Running stage" not in out
    stages = _run(clone, "dvc", "stage", "list", "--name-only").split()
    assert len(stages) > 5
    for stage in stages:
        assert f"Stage '{stage}' didn't change, skipping" in out, stage
    # every cached output is the same file, byte for byte; metrics (cache: false) came by git
    pulled = [p for d in ("data/prepared", "models") for p in (clone / d).rglob("*")
              if p.is_file()]
    model = next(iter(_params(repo)["models"]))
    assert clone / "models" / model / "seed0.pt" in pulled
    for path in pulled:
        assert path.read_bytes() == (repo / path.relative_to(clone)).read_bytes(), path
    metrics = Path("reports/metrics/train") / f"{model}.json"
    assert (clone / metrics).read_bytes() == (repo / metrics).read_bytes()


def test_experiment_changes_only_its_chain_and_its_metrics(repo):
    out = _run(repo, "dvc", "exp", "run", "-S", "models.dsprites_beta_vae.kl_weight=8")
    assert "Running stage 'train@dsprites_beta_vae'" in out
    assert "Running stage 'train@mnist_vae'" not in out
    show = json.loads(_run(repo, "dvc", "exp", "show", "--json"))
    # one experiment beside the baseline, whose beta-VAE metrics differ
    text = json.dumps(show)
    assert '"kl_weight": 8' in text.replace("8.0", "8")
    base = json.loads((repo / "reports/metrics/train/dsprites_beta_vae.json").read_text())
    exp_metrics = [m for m in _exp_metric_values(show, "dsprites_beta_vae") if m is not None]
    assert any(m != base["test"]["loss"] for m in exp_metrics)


def _exp_metric_values(show, model):
    """Every test loss of `model` found in `dvc exp show --json`."""
    values = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith(f"train/{model}.json") and isinstance(v, dict):
                    values.append(v.get("data", {}).get("test", {}).get("loss"))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(show)
    return values


def test_queued_experiment_logs_into_the_project_mlflow_store(repo):
    from mlflow.tracking import MlflowClient
    _run(repo, "dvc", "exp", "run", "--queue", "-S", "models.dsprites_beta_vae.kl_weight=2")
    _run(repo, "dvc", "queue", "start")
    _run(repo, sys.executable, "-c", _WAIT_FOR_QUEUE, timeout=3000)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("vaebench")
    runs = client.search_runs([exp.experiment_id], "tags.model = 'dsprites_beta_vae'")
    experiments = {r.data.tags["dvc_experiment"] for r in runs}
    assert "workspace" in experiments and len(experiments) >= 3  # repro, exp run, queued exp
    queued = [r for r in runs if r.data.params.get("model.kl_weight") == "2.0"]
    assert queued, "the queued experiment's run is in the project's mlflow.db"
    assert queued[0].info.artifact_uri.startswith((repo / "mlartifacts").as_uri())


_WAIT_FOR_QUEUE = """
import subprocess, sys, time
for _ in range(590):
    out = subprocess.run(["dvc", "queue", "status"], capture_output=True, text=True).stdout
    if "Queued" not in out and "Running" not in out:
        sys.exit(0 if "Failed" not in out else 1)
    time.sleep(5)
sys.exit(1)
"""
