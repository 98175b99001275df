"""What the report says: its sections, assembled from tables, figures and files.

Each section picks the keys it knows from the metrics files and says so in
plain words when there is nothing to show ("no models evaluated"), so a partial
pipeline still gives a complete page.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from vaebench.config import Params
from vaebench.report import claims_table, tables
from vaebench.report.page import Bullets, Code, Document, Figure, Gallery, Section, Table, Text
from vaebench.report.plots import GROUP_TITLES

# Train figures in this order first (then any other PNG the train stage drew).
TRAIN_FIGURES = ("reconstructions", "samples")
KNOWN_FIGURE_STAGES = ("train", "disentangle")


@dataclass
class Inputs:
    """Everything the sections read (already loaded) and where the files are."""

    cfg: Params
    metrics: dict[str, dict[str, dict]]
    flat: tables.Flat
    figures_dir: Path          # reports/figures (the stages' figures)
    own_figures: Path          # reports/figures/report (this stage's figures)
    commit: str
    command: str               # the exact `vaebench report ...` line
    drawn: dict = field(default_factory=dict)   # name -> Path | list[Path] | None
    claims: dict | None = None                  # claims.json's content


def _not_run(stage: str) -> str:
    return (f"No models evaluated: `evaluate.{stage}` in params.yaml is empty or the "
            f"`{stage}` stage has not run.")


def _pngs(folder: Path, first: tuple[str, ...] = ()) -> list[Path]:
    found = sorted(folder.glob("*.png")) if folder.is_dir() else []
    return sorted(found, key=lambda p: (first.index(p.stem) if p.stem in first else len(first),
                                        p.name))


def _title(path: Path) -> str:
    return path.stem.replace("_", " ")


def suite(x: Inputs) -> Section:
    cfg = x.cfg
    devices = []
    for stage, by_model in x.metrics.items():
        used = sorted({str(d.get("device")) for d in by_model.values() if d.get("device")})
        if used:
            devices.append(f"`{stage}`: {', '.join(used)} ({len(by_model)} models)")
    resolved = {"device": cfg.device, "seeds": list(cfg.seeds),
                **{name: sec.model_dump() for name, sec in cfg.sections.items()},
                "datasets": {n: d.model_dump() for n, d in cfg.datasets.items()},
                "evaluate": cfg.evaluate.model_dump()}
    return Section("suite", "The suite and its parameters", [
        Text(f"Profile `{cfg.profile}`; {len(cfg.models)} model variants on "
             f"{len({m.dataset for m in cfg.models.values()})} datasets; seeds "
             f"{list(cfg.seeds)}; requested device `{cfg.device}`. Devices the stages ran on:"),
        Bullets(devices or ["no stage has written metrics yet"]),
        Text("Every number is the mean over seeds. `m ± h`: h is the half-width of the 95% "
             "Student-t interval over seeds (shown with two or more seeds); `m (SE s)`: s is "
             "the standard error over test points of a single seed's estimate."),
        Table(tables.models_table(cfg, x.metrics), "Model variants (settings as written in "
              "params.yaml); the colour of a model is the same in every figure.",
              "No models declared in params.yaml."),
        Code(yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None, width=100),
             "yaml", f"Resolved parameters of profile `{cfg.profile}`"),
    ])


GROUPS_NOTE = ("Nats are compared only within one dataset and one kind of decoder "
               "likelihood (the `<dataset> · <kind>` headings): a Bernoulli log-probability of "
               "binary pixels and a Gaussian log-density of pixel values are different "
               "quantities.")


def _grouped(groups: list[tuple[str, pd.DataFrame]], caption: str, empty: str) -> list:
    """One table per (dataset, likelihood kind) group, its caption naming the group."""
    if not groups:
        return [Table(pd.DataFrame(), caption, empty)]
    return [Table(frame, f"{group}. {caption}".rstrip()) for group, frame in groups]


def claims(x: Inputs) -> Section:
    result = x.claims or {}
    summary = result.get("summary", {})
    return Section("claims", "Does this run reproduce the papers?", [
        Text(f"Each claim from the literature, tested on this run's metrics files "
             f"([claims.json](claims.json)): {summary.get('reproduced', 0)} reproduced, "
             f"{summary.get('not_reproduced', 0)} not reproduced, "
             f"{summary.get('not_measured', 0)} not measured. Interval: the 95% t-interval "
             "over seeds (two or more seeds), else ±1.96 standard errors over test points; "
             "with neither the claim is not measured. A claim of \"better\" is reproduced "
             "only when its whole interval is on the right side, one of \"at least as "
             "good\" fails only when its whole interval is on the wrong side, and an "
             "interval wider than the effect the claim is about decides nothing. The row "
             "shows the comparison closest to deciding the verdict; every comparison is in "
             "the second table. Rules: docs/claims.md."),
        Table(claims_table.verdict_table(result), "", "No claims evaluated."),
        Code(claims_table.comparisons_table(result).to_string(index=False), "",
             "Every comparison behind the verdicts"),
    ])


def training(x: Inputs) -> Section:
    blocks = [Table(tables.cost_table(x.metrics, x.flat),
                    "Training cost per seed (mean over seeds): wall-clock seconds for all epochs, "
                    "throughput of the last epoch; `<stage> (s)`: seconds each evaluation stage "
                    "took per seed.", "No models trained yet.")]
    objectives = tables.objective_tables(x.metrics, x.flat)
    if objectives:
        blocks.append(Text("Test set after training, nats per image. `objective (own loss)` is "
                           "what each model minimised (negative ELBO, β-weighted, IWAE bound, "
                           "reconstruction + penalty, ...): it ranks nothing across families. "
                           "`ELBO`, `exact log p(x)` and `NLL upper bound` are the same "
                           "quantity for every model that has them. " + GROUPS_NOTE))
        blocks.extend(_grouped(objectives, "", ""))
    if x.drawn.get("training_curves"):
        blocks.append(Figure(x.drawn["training_curves"], "Test objective (each model's own "
                             "loss) per epoch, mean over seeds (band: 95% interval), one panel "
                             "per dataset and likelihood kind."))
    diag = tables.diagnostics_table(x.flat, tables.NLL_PARTS)
    if not diag.empty:
        blocks.append(Table(diag, "Family-specific diagnostics on the test set, reported by "
                                  "the models after training."))
    return Section("training", "Training cost", blocks)


def likelihood(x: Inputs) -> Section:
    blocks = [
        Text("log p̂_K(x) = log (1/K) Σ_k p(x, z_k) / q(z_k | x), z_k ~ q(z | x): the importance-"
             "sampling estimate of log p(x), which is also the bound L_K (L_1 is the ELBO in "
             "expectation, and L_K rises towards log p(x) as K grows). `naive`: z_k drawn from "
             "the prior instead. Gaps, with q* fitted per data point: approximation = log p(x) − "
             "ELBO[q*], amortisation = ELBO[q*] − ELBO[q]. Nats per test image; higher log p is "
             "better. " + GROUPS_NOTE),
        *_grouped(tables.likelihood_tables(x.cfg, x.metrics, x.flat),
                  "Nats per test image. `log p̂ − ELBO` and `naive` are at each model's largest K "
                  "(the K list may differ per dataset, `loglik.datasets`); a blank cell: not "
                  "measured for that model.", _not_run("loglik")),
    ]
    if x.drawn.get("loglik_vs_k"):
        blocks.append(Figure(x.drawn["loglik_vs_k"], "log p̂_K(x) against K, one row of panels "
                             "per dataset and likelihood kind: mean over seeds with the 95% "
                             "interval over seeds (one seed: the SE over test points)."))
    blocks.append(Text("Negative log-likelihoods ranked, lowest (best) first, within each "
                       "dataset and likelihood kind: −log p̂_K for models with a density q(z|x), "
                       "and the upper bounds of models whose q is a point mass on discrete codes "
                       "(VQ models: reconstruction + code-prior nats, from the train stage, on "
                       "the full test set)."))
    blocks.extend(_grouped(tables.nll_tables(x.metrics, x.flat), "",
                           "No model reports a negative log-likelihood."))
    return Section("likelihood", "Log-likelihood", blocks)


def disentanglement(x: Inputs) -> Section:
    table = tables.disentanglement_table(x.flat)
    blocks: list = [
        Text("Scores of the codes (see `disentangle.representation`) against the dataset's "
             "ground-truth factors, with disentanglement_lib's metric definitions and the "
             "sample sizes of this profile; 1 is best for every score."),
        Table(table, "", _not_run("disentangle")),
    ]
    if x.drawn.get("disentanglement_bars"):
        blocks.append(Figure(x.drawn["disentanglement_bars"], "Disentanglement scores per model "
                             "(error bars: 95% interval over seeds)."))
    attrs = tables.attributes_table(x.flat)
    if len(attrs.columns) > 1:
        blocks.append(Table(attrs, "Attribute vectors: fraction of shifted codes that decode to "
                                   "the target factor value (in brackets: the same rate for the "
                                   "plain reconstruction)."))
    for model in x.metrics.get("disentangle", {}):
        pngs = _pngs(x.figures_dir / "disentangle" / model, ("traversals", "attribute_vectors"))
        blocks.extend(Figure(p, f"{model}: {_title(p)}") for p in pngs)
    return Section("disentanglement", "Disentanglement", blocks)


def robustness(x: Inputs) -> Section:
    blocks = [
        Text("Inputs corrupted at increasing levels (level 0 = clean) and attacked within "
             "ε-balls (projected gradient ascent). Each curve is summarised by its normalised "
             "area (AUC: the mean height of the curve over the level range, in the metric's "
             "units; `auc_<curve>_<metric>` in results.csv, where the per-factor probe "
             "accuracies are too). Lower is more robust for every metric except the probe "
             "accuracy (higher is better) and the ELBO change (closer to 0 is better)."),
        Table(tables.robustness_table(x.flat), "", _not_run("robustness")),
    ]
    for p in x.drawn.get("robustness") or []:
        group = p.stem.removeprefix("robustness_")
        blocks.append(Figure(p, f"{GROUP_TITLES.get(group, group)}: curves per dataset and "
                                "metric (mean over seeds, band: 95% interval over seeds)."))
    return Section("robustness", "Robustness", blocks)


def sample_quality(x: Inputs) -> Section:
    blocks: list = [Text(
        "Generated samples and reconstructions of held-out test images, each compared with "
        "the same held-out test images in the penultimate-layer features of a small conv "
        "classifier trained on the dataset's own training split (`featurenet@<dataset>`): "
        "`fd_<dataset>classifier` is the Fréchet distance between Gaussians fitted to the "
        "two feature sets (lower is better), precision the fraction of generated images "
        "inside the k-NN manifold of the real ones and recall the fraction of real images "
        "inside that of the generated ones (Kynkäänniemi et al. 2019, arXiv:1904.06991; "
        "higher is better). The feature space is our own classifier's, not Inception's, so "
        "these numbers are not FIDs and are not comparable to published FID values. The "
        "first row is the floor: training images against the same test images, what two "
        "finite samples of the data distribution itself score at these sample sizes.")]
    tables_ = tables.samplequality_tables(x.metrics, x.flat)
    if not tables_:
        blocks.append(Table(pd.DataFrame(), "", _not_run("samplequality")))
    for dataset, frame, accuracy in tables_:
        acc = ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())
        blocks.append(Table(frame, f"{dataset}: the feature net's held-out accuracy: "
                                   f"{acc or 'not recorded'}."))
    return Section("samplequality", "Sample quality", blocks)


def samples(x: Inputs) -> Section:
    blocks = []
    for model in x.cfg.models:
        pngs = _pngs(x.figures_dir / "train" / model, TRAIN_FIGURES)
        if pngs:
            blocks.append(Gallery([Figure(p, f"{model}: {_title(p)}") for p in pngs]))
    return Section("samples", "Samples and reconstructions",
                   blocks or [Text("No figures yet: the train stage draws them.")])


def other_figures(x: Inputs) -> Section | None:
    """Figures of stages this report has no section for (shown, not interpreted)."""
    blocks = []
    for folder in sorted(p for p in x.figures_dir.iterdir() if p.is_dir()) \
            if x.figures_dir.is_dir() else []:
        if folder.name in KNOWN_FIGURE_STAGES or folder.resolve() == x.own_figures.resolve():
            continue
        for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            blocks.extend(Figure(p, f"{folder.name} / {model_dir.name}: {_title(p)}")
                          for p in _pngs(model_dir))
    return Section("other", "Other figures", blocks) if blocks else None


def reproduce(x: Inputs) -> Section:
    cfg = x.cfg
    files = [f"[results.csv](results.csv): every number of this page, tidy (model, family, "
             "dataset, seed, stage, metric, value, stderr, ci95; seed `mean` = over seeds)",
             "[headline.json](headline.json): the headline numbers per model (`dvc metrics show "
             "reports/headline.json`; across experiments with the `dvc exp show` line above)",
             "[report.md](report.md) / [index.html](index.html): this report"]
    return Section("reproduce", "How to reproduce", [
        Text(f"Code at git commit `{x.commit}`, profile `{cfg.profile}`, seeds "
             f"{list(cfg.seeds)}."),
        Code("\n".join([
            f"git checkout {x.commit}",
            "make repro                     # creates .venv, installs, runs `dvc repro`",
            f"dvc exp run -S profile={cfg.profile} -S 'seeds={list(cfg.seeds)}'"
            "   # the same profile and seeds explicitly",
            "dvc plots show                 # training curves, log p̂ vs K, robustness curves",
            "dvc exp show --drop '.*' --keep 'Experiment|headline'   # headline numbers, "
            "every experiment",
            "mlflow ui --backend-store-uri sqlite:///mlflow.db   # runs side by side",
            x.command + "   # this page alone",
        ]), "bash"),
        Bullets(files),
    ])


def document(x: Inputs) -> Document:
    n_trained = len(x.metrics.get("train", {}))
    intro = [Text(f"Profile `{x.cfg.profile}` · {n_trained} of {len(x.cfg.models)} models "
                  f"trained · seeds {list(x.cfg.seeds)} · git commit `{x.commit[:12]}`. Built "
                  "by `vaebench report` from the stages' metrics, curve and figure files only; "
                  "the same "
                  "numbers are in [results.csv](results.csv) and on the MLflow runs.")]
    sections = [claims(x), suite(x), training(x), likelihood(x), disentanglement(x), robustness(x),
                sample_quality(x), samples(x)]
    other = other_figures(x)
    if other is not None:
        sections.append(other)
    sections.append(reproduce(x))
    return Document("vaebench report", intro, sections)
