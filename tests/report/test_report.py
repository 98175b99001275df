"""The report stage on fixture metrics files in the stages' real layouts (see conftest.py)."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from vaebench import cli
from vaebench.config import load_config
from vaebench.report import ReportError, tables
from vaebench.report.plots import model_colours
from vaebench.report.stage import PLOT_CSVS, report_stage
from vaebench.figures import save_image_rows
from vaebench.report.tables import Cell, flat


def load_helper(stem: str):
    """A helper module next to this file (tests are not a package)."""
    name = f"vaebench_tests_{stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{stem}.py"))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def load_pagecheck():
    """tests/report/pagecheck.py, the independent page checker (also used by test_pipeline)."""
    return load_helper("pagecheck")


pagecheck = load_pagecheck()
browser = load_helper("browser")

SECTIONS = ["claims", "suite", "training", "likelihood", "disentanglement", "robustness", "samples",
            "reproduce"]
FIXTURE_EVALUATE = {"loglik": ["mnist_vae", "mnist_vae_gaussdec", "dsprites_vae"],
                    "disentangle": ["dsprites_vae", "dsprites_beta_vae"],
                    "robustness": ["mnist_ae", "mnist_vae", "dsprites_vae"]}


@pytest.fixture
def cfg(raw_params, write_params):
    raw_params["profile"] = "tiny"
    raw_params["seeds"] = [0, 1]
    raw_params["evaluate"] = FIXTURE_EVALUATE
    return load_config(write_params(raw_params))


def _run(cfg, root: Path, mirror: bool = False) -> dict:
    """The report stage, and with ``mirror`` what `vaebench mlflow-sync` does with its files."""
    out = report_stage(cfg, root / "metrics", root / "plots", root / "figures",
                       root / "figures" / "report", root)
    if mirror:
        from vaebench import mirror as mirrors
        mirrors.report(root, root / "figures" / "report", mirrors.report_params(cfg))
    return out


# --- flattening ----------------------------------------------------------------------------

def test_leaves_attach_uncertainty_and_skip_non_metrics():
    d = {"model": "m", "family": "vae", "ks": [1, 5], "variational": True, "note": None,
         "elbo": {"mean": -90.0, "stderr": 0.5, "mean_ci95": 1.0, "stderr_ci95": 0.1,
                  "error": 0.2, "error_stderr": 0.05},
         "time_s": 3.0, "time_s_ci95": 0.3, "gaps": {"amortisation": {"mean": 2.0}},
         "seeds": {"0": {"time_s": 3.0}}}
    assert flat(d) == {"elbo": Cell(-90.0, 0.5, 1.0), "elbo.error": Cell(0.2, 0.05, None),
                       "time_s": Cell(3.0, None, 0.3), "gaps.amortisation": Cell(2.0)}


def test_fmt_shows_interval_over_seeds_else_standard_error():
    assert tables.fmt(Cell(-86.123, 0.2, 0.456)) == "-86.12 ± 0.46"
    assert tables.fmt(Cell(-86.123, 0.2)) == "-86.12 (SE 0.20)"
    assert tables.fmt(Cell(1234.5), 0) == "1,234"
    assert tables.fmt(None) == ""


def test_results_csv_is_tidy_with_means_per_seed_values_and_intervals(cfg, tmp_path, write_reports):
    root = tmp_path / "reports"
    write_reports(root, cfg)
    _run(cfg, root)
    df = pd.read_csv(root / "results.csv", dtype={"seed": str})
    assert list(df.columns) == tables.RESULT_COLUMNS
    assert set(df["stage"]) == {"train", "loglik", "disentangle", "robustness"}
    data = json.loads((root / "metrics" / "loglik" / "mnist_vae.json").read_text())
    rows = df[(df.stage == "loglik") & (df.model == "mnist_vae") & (df.metric == "log_p_hat.k5")]
    assert sorted(rows["seed"]) == ["0", "1", "mean"]
    per_seed = [data["seeds"][s]["log_p_hat"]["k5"] for s in ("0", "1")]
    for s, r in zip(("0", "1"), per_seed):
        row = rows[rows.seed == s].iloc[0]
        assert row["value"] == pytest.approx(r["mean"])
        assert row["stderr"] == pytest.approx(r["stderr"])
        assert math.isnan(row["ci95"])
    mean = rows[rows.seed == "mean"].iloc[0]
    values = np.array([r["mean"] for r in per_seed])
    assert mean["value"] == pytest.approx(values.mean())
    # 95% Student-t half-width over the two seeds, computed independently
    half = stats.t.ppf(0.975, 1) * values.std(ddof=1) / math.sqrt(2)
    assert mean["ci95"] == pytest.approx(half, rel=1e-3)
    assert mean["family"] == "vae" and mean["dataset"] == "mnist"
    # every numeric leaf of every file is there once per seed row
    train = json.loads((root / "metrics" / "train" / "dsprites_vae.json").read_text())
    got = df[(df.stage == "train") & (df.model == "dsprites_vae") & (df.seed == "0")]
    assert set(got["metric"]) == set(flat(train["seeds"]["0"]))


# --- the page ------------------------------------------------------------------------------

def test_page_has_every_section_and_only_local_resolving_references(cfg, tmp_path, write_reports):
    root = tmp_path / "reports"
    write_reports(root, cfg)
    # a stage the report has no section for: its figures are shown under "Other figures"
    save_image_rows(root / "figures" / "sequence" / "mnist_vae" / "rollout.png",
                    [("x", torch.rand(2, 1, 8, 8))], "rollout")
    out = _run(cfg, root)
    page = pagecheck.check_html(root / "index.html")
    assert page.sections == [*SECTIONS[:-1], "other", "reproduce"]
    assert "sequence / mnist_vae: rollout" in "".join(page.text)
    text = "".join(page.text)
    # every figure is on the page: own figures, and every PNG the stages drew
    stage_pngs = [p for p in (root / "figures").rglob("*.png") if "report" not in p.parts]
    assert len(page.images) == len(out["figures"]) + len(stage_pngs)
    assert {p.name for p in out["figures"]} == {
        "training_curves.png", "loglik_vs_k.png", "disentanglement_bars.png",
        "robustness_gaussian.png", "robustness_masking.png", "robustness_attack_l2.png"}
    for model in cfg.models:
        assert model in text
    # numbers on the page are the files' numbers
    data = json.loads((root / "metrics" / "loglik" / "dsprites_vae.json").read_text())
    elbo = tables.fmt(Cell(data["elbo"]["mean"], data["elbo"]["stderr"], data["elbo"]["mean_ci95"]))
    assert elbo in text
    vq = json.loads((root / "metrics" / "train" / "mnist_ae.json").read_text())["diagnostics"]
    assert tables.fmt(Cell(vq["nll_bound"], None, vq["nll_bound_ci95"])) in text
    assert "No models evaluated" not in text

    images, links = pagecheck.check_markdown(root / "report.md")
    assert len(images) == len(page.images)
    assert {f"#{s}" for s in SECTIONS} <= set(links)
    assert {"results.csv", "headline.json"} <= set(links)


def test_page_in_a_real_browser_has_no_broken_image_and_no_network_request(
        cfg, tmp_path, write_reports):
    why = browser.unusable()
    if why:   # the Debian package `chromium` provides one
        pytest.skip(f"needs a working headless Chromium: {why}")
    root = tmp_path / "reports"
    write_reports(root, cfg)
    _run(cfg, root)
    view = browser.check_in_browser(root / "index.html")
    assert view.images == len(pagecheck.check_html(root / "index.html").images) > 0
    assert view.broken == [] and view.network == []
    assert all(u.startswith(("file:", "data:")) for u in view.fetched)
    # the probe can fail: a missing file and a remote image are both caught
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head></head><body><img src="missing.png">'
                   '<img src="http://example.invalid/x.png"></body></html>')
    view = browser.check_in_browser(bad)
    assert view.images == 2 and len(view.broken) == 2
    assert "http://example.invalid/x.png" in view.network


def _kinds(root: Path, stage: str) -> dict[str, str]:
    """{model: recorded likelihood} of a stage's metrics files (independent of tables)."""
    return {p.stem: json.loads(p.read_text())["likelihood"]
            for p in (root / "metrics" / stage).glob("*.json")}


def _bernoulli(likelihood: str) -> bool:
    return likelihood == "bernoulli"


def test_gaussian_and_bernoulli_models_never_share_a_panel(cfg, tmp_path, write_reports):
    root = tmp_path / "reports"
    write_reports(root, cfg)
    _run(cfg, root)
    own = root / "figures" / "report"
    for name, stage in (("training_curves.csv", "train"), ("loglik_vs_k.csv", "loglik")):
        kinds = _kinds(root, stage)
        df = pd.read_csv(own / name)
        panels = df.groupby("panel")["model"].agg(set)
        assert len(panels) >= 2
        for panel, models in panels.items():
            assert len({_bernoulli(kinds[m]) for m in models}) == 1, (name, panel, models)
            assert len({m.split("_")[0] for m in models}) == 1     # one dataset per panel
        assert df.groupby("model")["panel"].nunique().eq(1).all()
    panel = pd.read_csv(own / "loglik_vs_k.csv").groupby("model")["panel"].first()
    assert panel["mnist_vae"] == "mnist · Bernoulli"
    assert panel["mnist_vae_gaussdec"] == "mnist · Gaussian density"


def test_the_panel_follows_the_likelihood_recorded_in_the_files(cfg, tmp_path, write_reports):
    # the report reads files only: a train file that records a Gaussian likelihood moves the
    # model to a Gaussian panel although params.yaml still says Bernoulli
    root = tmp_path / "reports"
    write_reports(root, cfg)
    path = root / "metrics" / "train" / "dsprites_vae.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "likelihood": "gaussian", "binarize": True}))
    _run(cfg, root)
    panel = pd.read_csv(root / "figures" / "report" / "training_curves.csv").groupby(
        "model")["panel"].first()
    assert panel["dsprites_vae"] == "dsprites · Gaussian density, binarised"
    assert panel["dsprites_beta_vae"] == "dsprites · Bernoulli"


def test_rankings_and_tables_are_split_by_dataset_and_likelihood_kind(cfg, tmp_path,
                                                                       write_reports):
    root = tmp_path / "reports"
    write_reports(root, cfg)
    metrics = tables.load_metrics(root / "metrics", cfg)
    F = tables.flat_all(metrics)
    kinds = {**_kinds(root, "train"), **_kinds(root, "loglik")}
    for make in (lambda: tables.nll_tables(metrics, F),
                 lambda: tables.likelihood_tables(cfg, metrics, F),
                 lambda: tables.objective_tables(metrics, F)):
        groups = make()
        seen = [m for _, df in groups for m in df["model"]]
        assert len(seen) == len(set(seen))                   # every model in one table only
        for group, df in groups:
            assert len({_bernoulli(kinds[m]) for m in df["model"]}) == 1, (group, list(df.model))
        assert "mnist_vae_gaussdec" in seen
    # the ranking: lowest NLL first within a group, and the density model alone in its own
    nll = dict(tables.nll_tables(metrics, F))
    assert list(nll["mnist · Gaussian density"]["model"]) == ["mnist_vae_gaussdec"]
    ranked = nll["mnist · Bernoulli"]
    values = [float(v.split()[0].replace(",", "")) for v in ranked["NLL (nats)"]]
    assert values == sorted(values) and set(ranked["model"]) == {"mnist_vae", "mnist_ae"}


def test_training_tables_show_the_elbo_apart_from_the_labelled_objective(cfg, tmp_path,
                                                                         write_reports):
    root = tmp_path / "reports"
    write_reports(root, cfg)
    metrics = tables.load_metrics(root / "metrics", cfg)
    F = tables.flat_all(metrics)
    assert not any("loss" in c for c in tables.cost_table(metrics, F).columns)
    groups = dict(tables.objective_tables(metrics, F))
    table = groups["mnist · Bernoulli"]
    assert {"ELBO", "objective (own loss)"} <= set(table.columns)
    data = json.loads((root / "metrics" / "train" / "mnist_vae.json").read_text())["test"]
    row = table.set_index("model").loc["mnist_vae"]
    assert row["ELBO"] == tables.fmt(Cell(data["elbo"], None, data["elbo_ci95"]))
    assert row["objective (own loss)"] == tables.fmt(Cell(data["loss"], None, data["loss_ci95"]))
    gauss = groups["mnist · Gaussian density"].set_index("model").loc["mnist_vae_gaussdec"]
    assert float(gauss["ELBO"].split()[0].replace(",", "")) > 900   # ~ +1000 nats, on its own
    _run(cfg, root)
    text = "".join(pagecheck.check_html(root / "index.html").text)
    assert "objective (own loss)" in text and "mnist · Gaussian density" in text


def test_a_file_without_its_likelihood_is_named(cfg, tmp_path, write_reports):
    root = tmp_path / "reports"
    write_reports(root, cfg)
    path = root / "metrics" / "loglik" / "mnist_vae.json"
    data = json.loads(path.read_text())
    del data["likelihood"]
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match="loglik/mnist_vae.json: no 'likelihood'"):
        _run(cfg, root)


def test_colours_are_one_per_model_and_the_same_everywhere(cfg, tmp_path, write_reports):
    for n in (3, 10, 20, 25, 40, 45):
        names = [f"m{i}" for i in range(n)]
        colours = model_colours(names)
        assert list(colours) == names and len(set(colours.values())) == n
        assert model_colours(names) == colours
    root = tmp_path / "reports"
    write_reports(root, cfg)
    _run(cfg, root)
    html = (root / "index.html").read_text()
    for model, colour in model_colours(list(cfg.models)).items():
        assert f'background:{colour}"></span>{model}' in html


def test_sections_say_when_nothing_was_evaluated(cfg, tmp_path, write_reports):
    root = tmp_path / "reports"
    write_reports(root, cfg)
    for stage in ("loglik", "disentangle", "robustness"):
        for p in (root / "metrics" / stage).glob("*.json"):
            p.unlink()
    _run(cfg, root)
    page = pagecheck.check_html(root / "index.html")
    assert page.sections == SECTIONS
    text = "".join(page.text)
    for stage in ("loglik", "disentangle", "robustness"):
        assert f"No models evaluated: evaluate.{stage}" in text
    own = root / "figures" / "report"
    assert sorted(p.name for p in own.glob("*.png")) == ["training_curves.png"]
    for name in PLOT_CSVS:        # dvc plots always finds its files
        assert (own / name).is_file()
    assert pd.read_csv(own / "loglik_vs_k.csv").empty


def test_report_of_an_empty_suite_still_builds(cfg, tmp_path):
    root = tmp_path / "reports"
    (root / "metrics").mkdir(parents=True)
    _run(cfg, root)
    page = pagecheck.check_html(root / "index.html")
    assert page.sections == SECTIONS
    assert pd.read_csv(root / "results.csv").empty


def test_stale_files_are_skipped_and_corrupt_ones_named(cfg, tmp_path, write_reports, capsys):
    root = tmp_path / "reports"
    write_reports(root, cfg)
    stale = root / "metrics" / "train" / "removed_model.json"
    stale.write_text(json.dumps({"model": "removed_model", "n_params": 1}))
    not_listed = root / "metrics" / "loglik" / "mnist_ae.json"
    not_listed.write_text(json.dumps({"model": "mnist_ae", "elbo": {"mean": -1.0}}))
    _run(cfg, root)
    df = pd.read_csv(root / "results.csv")
    assert "removed_model" not in set(df["model"])
    assert "mnist_ae" not in set(df[df.stage == "loglik"]["model"])
    assert "skipping" in capsys.readouterr().out

    broken = root / "metrics" / "robustness" / "mnist_vae.json"
    broken.write_text('{"model": "mnist_vae", "auc')
    with pytest.raises(ReportError, match="robustness/mnist_vae.json"):
        _run(cfg, root)
    params = tmp_path / "params.yaml"
    code = cli.main(["--params", str(params), "report", "--metrics", str(root / "metrics"),
                     "--plots", str(root / "plots"), "--figures", str(root / "figures"),
                     "--figures-out", str(root / "figures" / "report"), "--out", str(root)])
    assert code == 2
    assert "mnist_vae.json" in capsys.readouterr().err
    with pytest.raises(ReportError, match="metrics folder not found"):
        _run(cfg, tmp_path / "nowhere")


def test_headline_metrics_and_the_suite_run_in_mlflow(cfg, tmp_path, write_reports):
    from mlflow.tracking import MlflowClient

    from vaebench import tracking
    root = tmp_path / "reports"
    write_reports(root, cfg)
    _run(cfg, root, mirror=True)
    head = json.loads((root / "headline.json").read_text())["headline"]
    assert set(head) == {"mnist_ae", "mnist_vae", "mnist_vae_gaussdec", "dsprites_vae",
                         "dsprites_beta_vae"}  # trained
    vae = head["mnist_vae"]
    data = json.loads((root / "metrics" / "loglik" / "mnist_vae.json").read_text())
    assert vae["loglik"]["elbo"] == pytest.approx(data["elbo"]["mean"])
    assert vae["loglik"]["log_p_hat_k50"] == pytest.approx(data["log_p_hat"]["k50"]["mean"])
    assert set(head["dsprites_vae"]) == {"train", "loglik", "disentangle", "robustness"}
    assert "mig_mig" in head["dsprites_vae"]["disentangle"]
    assert head["mnist_ae"]["train"]["nll_bound"] == pytest.approx(96.0)

    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], "tags.kind = 'suite'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["profile"] == "tiny" and "git_commit" in run.data.tags
    assert run.data.metrics["mnist_vae/loglik/elbo"] == pytest.approx(data["elbo"]["mean"])
    names = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/index.html", "report/report.md", "report/results.csv",
            "report/headline.json", "report/figures"} <= names
    # the same results again: the same suite run; different results: a new one
    _run(cfg, root, mirror=True)
    assert len(client.search_runs([exp.experiment_id], "tags.kind = 'suite'")) == 1
    (root / "metrics" / "robustness" / "mnist_ae.json").unlink()
    _run(cfg, root, mirror=True)
    assert len(client.search_runs([exp.experiment_id], "tags.kind = 'suite'")) == 2
