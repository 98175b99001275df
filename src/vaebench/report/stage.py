"""``report``: one page comparing every variant, from the stages' files only.

Reads ``<metrics>/<stage>/<model>.json`` (any stage), the training and
robustness curves under ``<plots>``, and the figures the stages drew under
``<figures>``; writes, under ``<out>``:

* ``results.csv``   -- every number, tidy (:func:`tables.results_frame`);
* ``headline.json`` -- the few numbers per model ``dvc exp show`` lists;
* ``claims.json``   -- the literature's claims tested on these metrics (vaebench.claims);
* ``report.md``     -- the report for a code-hosting site (images by relative path);
* ``index.html``    -- the same report as one self-contained page;

and its own figures (PNG, with the CSV each curve figure is drawn from) under
``<figures_out>``. ``vaebench mlflow-sync`` attaches the report to a suite-level MLflow run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from vaebench import claims, io, tracking
from vaebench.config import Params
from vaebench.report import page, plots, sections, tables

# The CSVs the top-level ``plots:`` of dvc.yaml render; written even when empty.
PLOT_CSVS = ("training_curves.csv", "loglik_vs_k.csv", "robustness_curves.csv")
FIGURE_FILES = ("*.png", "*.csv")   # what the stage writes into its own figures folder


def draw_figures(cfg: Params, metrics: dict, F: tables.Flat, plots_dir: Path,
                 colours: dict[str, str], out: Path) -> dict:
    """Every report figure and curve CSV into ``out``; ``{name: path(s) or None}``."""
    train = plots.aggregate_curves(plots.read_train_curves(plots_dir, metrics))
    loglik = plots.loglik_frame(metrics, F)
    robust = plots.read_robustness_curves(
        plots_dir, {m: d.get("dataset", "") for m, d in metrics.get("robustness", {}).items()})
    for frame, name in zip((train, loglik, robust), PLOT_CSVS):
        frame.to_csv(out / name, index=False)
    return {"training_curves": plots.training_curves(train, colours, out / "training_curves.png"),
            "loglik_vs_k": plots.loglik_vs_k(loglik, colours, out / "loglik_vs_k.png"),
            "disentanglement_bars": plots.disentanglement_bars(
                F, colours, out / "disentanglement_bars.png"),
            "robustness": plots.robustness_curves(robust, colours, out)}


def _moved(drawn: dict, src: Path, dst: Path) -> dict:
    """The same paths after the temporary folder ``src`` became ``dst``."""
    def move(p):
        if p is None:
            return None
        if isinstance(p, list):
            return [move(q) for q in p]
        return dst / Path(p).relative_to(src)
    return {k: move(v) for k, v in drawn.items()}


def report_stage(cfg: Params, metrics_dir: Path, plots_dir: Path, figures_dir: Path,
                 figures_out: Path, out_dir: Path, command: str | None = None,
                 params: Path | None = None) -> dict:
    """Write the report; return
    ``{"models", "figures", "seconds"}``. ``params``: the params.yaml the run used (its
    other profiles say which one would decide an undecided claim)."""
    t0 = time.perf_counter()
    metrics_dir, plots_dir, figures_dir = Path(metrics_dir), Path(plots_dir), Path(figures_dir)
    figures_out, out_dir = Path(figures_out), Path(out_dir)
    io.check_replaceable(figures_out, FIGURE_FILES)
    metrics = tables.load_metrics(metrics_dir, cfg)
    for bad in tables.nonfinite(metrics):   # kept in every table and results.csv, as NaN/inf
        print(f"report: warning: non-finite result {bad}", file=sys.stderr)
    F = tables.flat_all(metrics)
    colours = plots.model_colours(list(cfg.models))

    with io.atomic_dir(figures_out, FIGURE_FILES) as tmp:
        drawn = _moved(draw_figures(cfg, metrics, F, plots_dir, colours, tmp), tmp, figures_out)

    with io.atomic_path(out_dir / "results.csv") as tmp:
        tables.results_csv(tables.results_frame(metrics), tmp)
    headline = tables.headline(metrics, F)
    # one top-level key, so `dvc exp show --drop '.*' --keep 'Experiment|headline'` shows them
    io.write_json(out_dir / "headline.json", {"headline": headline})
    verdicts = claims.evaluate_claims(claims.Context(
        cfg, metrics, plots_dir, claims.alternatives(params, cfg.profile)))
    claims.write_claims(out_dir / "claims.json", verdicts)

    commit = tracking.git_commit()
    command = command or (f"vaebench report --metrics {metrics_dir} --plots {plots_dir} "
                          f"--figures {figures_dir} --figures-out {figures_out} --out {out_dir}")
    doc = sections.document(sections.Inputs(cfg, metrics, F, figures_dir, figures_out,
                                            commit, command, drawn, verdicts))
    io.write_text(out_dir / "report.md", page.to_markdown(doc, out_dir))
    io.write_text(out_dir / "index.html", page.to_html(doc, colours))

    own = sorted(figures_out.glob("*.png"))
    seconds = time.perf_counter() - t0
    print(f"report: {len(metrics.get('train', {}))} trained models, stages "
          f"{list(metrics)}, {len(own)} figures -> {out_dir / 'index.html'} ({seconds:.1f} s)")
    return {"models": sorted(metrics.get("train", {})), "figures": own, "seconds": seconds}

