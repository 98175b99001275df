"""Metrics files -> pandas tables: the tidy ``results.csv`` and the report's section tables.

Every stage writes ``reports/metrics/<stage>/<model>.json`` in the layout of
:func:`vaebench.runs.stage_metrics`: identity keys, the mean over seeds of every
numeric leaf (with ``<key>_ci95`` beside it when there are several seeds) and
``seeds: {seed: {...}}``. This module reads whatever such files exist and
flattens them generically, so a new stage or a new metric shows up in
``results.csv`` without code here; the section tables then pick known keys and
simply leave out what a run did not produce.

Flattening rules (one metric per numeric leaf, dotted path):

* ``x_ci95`` is the 95% interval half-width of ``x`` over seeds -> column ``ci95``;
* ``x_stderr`` is the standard error of ``x`` over test points -> column ``stderr``;
* a dict ``{mean, stderr, ...}`` (a summary over test points) is the metric of
  its own path: ``log_p_hat.k5`` = its ``mean``, with its ``stderr``;
* booleans, strings, lists and ``None`` are not metrics.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from vaebench.config import Params
from vaebench.report import ReportError

IDENTITY = ("model", "family", "dataset")
STAGE_ORDER = ("train", "loglik", "disentangle", "robustness")  # then any other, by name
# Stages whose numbers are in the units of the decoder likelihood (recorded in their files).
KIND_STAGES = ("train", "loglik")
RESULT_COLUMNS = ["model", "family", "dataset", "seed", "stage", "metric", "value",
                  "stderr", "ci95"]


@dataclass(frozen=True)
class Cell:
    """One number with its uncertainty: ``ci95`` over seeds, ``stderr`` over test points."""

    value: float
    stderr: float | None = None
    ci95: float | None = None


# --- reading -----------------------------------------------------------------------------

def load_metrics(metrics_dir: str | Path, cfg: Params) -> dict[str, dict[str, dict]]:
    """``{stage: {model: metrics JSON}}`` for every ``<metrics_dir>/<stage>/<model>.json``,
    stages in :data:`STAGE_ORDER`, models in params.yaml order.

    Only models that params.yaml still declares are kept (and, for the stages driven by
    an ``evaluate:`` list, only models in that list), so a file left behind by a removed
    model does not reach the report; each skipped file is printed.
    """
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise ReportError(f"{metrics_dir}: metrics folder not found; run the train stage first")
    lists = cfg.evaluate.model_dump()
    order = {m: i for i, m in enumerate(cfg.models)}
    stages = sorted((p for p in metrics_dir.iterdir() if p.is_dir()),
                    key=lambda p: (STAGE_ORDER.index(p.name) if p.name in STAGE_ORDER
                                   else len(STAGE_ORDER), p.name))
    out: dict[str, dict[str, dict]] = {}
    for stage_dir in stages:
        stage = stage_dir.name
        wanted = lists.get(stage, list(cfg.models))
        for path in sorted(stage_dir.glob("*.json"), key=lambda p: (order.get(p.stem, 0), p.name)):
            if path.stem not in cfg.models or path.stem not in wanted:
                print(f"report: skipping {path}: {path.stem!r} is not in "
                      f"{'evaluate.' + stage if stage in lists else 'models'} of params.yaml")
                continue
            data = read_metrics(path)
            if stage in KIND_STAGES and not isinstance(data.get("likelihood"), str):
                raise ReportError(f"{path}: no 'likelihood' recorded, so its nats cannot be "
                                  f"grouped with comparable models; re-run the {stage} stage")
            out.setdefault(stage, {})[path.stem] = data
    return out


def read_metrics(path: Path) -> dict:
    """One metrics JSON; a clear error naming the file when it is corrupt."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: not a readable metrics JSON ({err}); "
                          f"re-run the stage that writes it") from None
    if not isinstance(data, dict) or "model" not in data:
        raise ReportError(f"{path}: expected a metrics object with a 'model' key "
                          f"(runs.stage_metrics layout)")
    return data


# --- flattening --------------------------------------------------------------------------

def _number(v) -> bool:
    return _numeric(v) and math.isfinite(v)


def _numeric(v) -> bool:
    """A number, finite or not: a NaN or infinite result is kept and shown as such."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _attached(key: str, d: dict) -> bool:
    """Is ``key`` the uncertainty of a sibling (so not a metric of its own)?"""
    for suffix in ("_ci95", "_stderr"):
        if key.endswith(suffix) and key[: -len(suffix)] in d:
            return True
    return key == "stderr" and "mean" in d


def leaves(d: dict, prefix: str = "") -> Iterator[tuple[str, Cell]]:
    """``(metric path, Cell)`` for every numeric leaf of one metrics dict (rules above)."""
    for key, v in d.items():
        if prefix == "" and key == "seeds":
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(v, dict):
            yield from leaves(v, path)
        elif _numeric(v) and not _attached(key, d):
            stderr = d.get(f"{key}_stderr", d.get("stderr") if key == "mean" else None)
            name = prefix if key == "mean" and prefix else path
            yield name, Cell(float(v), float(stderr) if _numeric(stderr) else None,
                             float(d[f"{key}_ci95"]) if _numeric(d.get(f"{key}_ci95")) else None)


def flat(d: dict) -> dict[str, Cell]:
    """``{metric path: Cell}`` of one metrics dict (the aggregate over seeds)."""
    return dict(leaves(d))


def results_frame(metrics: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """The tidy table: one row per (model, seed, stage, metric); seed ``mean`` is the
    aggregate over seeds (with ``ci95`` when there were several), then one row per seed."""
    rows = []
    for stage, by_model in metrics.items():
        for model, data in by_model.items():
            ident = {k: data.get(k, "") for k in IDENTITY}
            ident["model"] = model
            runs = [("mean", data)] + [(str(s), r) for s, r in (data.get("seeds") or {}).items()
                                       if isinstance(r, dict)]
            for seed, d in runs:
                for metric, cell in leaves(d):
                    rows.append({**ident, "seed": seed, "stage": stage, "metric": metric,
                                 "value": cell.value, "stderr": cell.stderr, "ci95": cell.ci95})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def results_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write :func:`results_frame` to ``path``; a NaN result is written ``NaN`` (pandas
    would leave the cell empty, which reads as "not measured"; ``inf`` is kept as is)."""
    out = frame.assign(value=frame["value"].astype(object).where(frame["value"].notna(), "NaN"))
    out.to_csv(path, index=False)


# --- formatting --------------------------------------------------------------------------

def fmt(cell: Cell | None, digits: int = 2) -> str:
    """``m ± ci95`` (several seeds), else ``m (SE s)`` (a summary over test points), else ``m``;
    NaN and infinities are written out (``NaN``, ``inf``, ``-inf``), never left blank."""
    if cell is None:
        return ""
    text = _num(cell.value, digits)
    if cell.ci95 is not None:
        return f"{text} ± {_num(cell.ci95, digits)}"
    if cell.stderr is not None:
        return f"{text} (SE {_num(cell.stderr, digits)})"
    return text


def _num(value: float, digits: int) -> str:
    if math.isnan(value):
        return "NaN"
    return f"{value:,.{digits}f}" if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def nonfinite(metrics: dict[str, dict[str, dict]]) -> list[str]:
    """``model / stage / metric = value`` for every NaN or infinite result (mean over seeds)."""
    return [f"{model} / {stage} / {metric} = {cell.value}"
            for stage, by_model in metrics.items() for model, data in by_model.items()
            for metric, cell in leaves(data) if not math.isfinite(cell.value)]


def stage_time(f: dict[str, Cell]) -> Cell | None:
    """Seconds a stage took: ``time_s``, else ``time_s.total``, else the sum of its parts."""
    if "time_s" in f:
        return f["time_s"]
    if "time_s.total" in f:
        return f["time_s.total"]
    parts = [c.value for k, c in f.items() if k.startswith("time_s.") and k.count(".") == 1]
    return Cell(sum(parts)) if parts else None


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """A display frame: every cell a string; columns no model has filled are dropped."""
    df = pd.DataFrame(rows, columns=columns).fillna("")
    keep = [c for c in columns if c == columns[0] or (df[c] != "").any()]
    return df[keep]


def auto_digits(value: float) -> int:
    """Decimals that show about four significant digits (0 to 4)."""
    if value == 0 or not math.isfinite(value):
        return 2
    return int(min(4, max(0, 3 - math.floor(math.log10(abs(value))))))


def fmt_auto(cell: Cell | None) -> str:
    return "" if cell is None else fmt(cell, auto_digits(cell.value))


# --- likelihood kinds ----------------------------------------------------------------------
# Nats are comparable only within one dataset and one kind of decoder distribution: a
# Bernoulli log-probability of binary pixels is <= 0 (~ -140 on MNIST), a Gaussian
# log-density of the same images is not a probability at all (~ +1000). Every likelihood
# ranking, table and figure is therefore split by (dataset, kind).

def likelihood_kind(data: dict) -> str:
    """The kind of number a metrics file's nats are, from the likelihood it records."""
    if data.get("likelihood") == "bernoulli":
        return "Bernoulli"
    # a density of binarised pixels is yet another quantity than one of intensities
    return "Gaussian density" + (", binarised" if data.get("binarize") else "")


def group_of(data: dict) -> str:
    """``<dataset> · <likelihood kind>``: models whose nats may be compared."""
    return f"{data.get('dataset', '')} · {likelihood_kind(data)}"


def by_group(rows: list[dict], columns: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """Rows carrying a ``group`` key -> ``[(group, display frame)]``, groups in first-seen
    order (each frame drops the columns none of its models filled)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append({k: v for k, v in row.items() if k != "group"})
    return [(g, _frame(r, columns)) for g, r in groups.items()]


# --- section tables ----------------------------------------------------------------------
# Each takes ``F = {stage: {model: flat dict}}`` (see :func:`flat_all`) and returns a
# display frame whose first column is the model (or the metric, for transposed tables).

Flat = dict[str, dict[str, dict[str, Cell]]]


def flat_all(metrics: dict[str, dict[str, dict]]) -> Flat:
    return {stage: {m: flat(d) for m, d in by_model.items()} for stage, by_model in metrics.items()}


def _short(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def models_table(cfg: Params, metrics: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Every declared model: family, dataset, its settings as written in params.yaml,
    seeds trained, evaluations."""
    rows = []
    for name, mcfg in cfg.models.items():
        settings = {k: v for k, v in mcfg.model_dump(exclude_unset=True).items()
                    if k not in ("family", "dataset")}
        train = metrics.get("train", {}).get(name)
        evaluated = [s for s in metrics if s != "train" and name in metrics[s]]
        seeds = sorted(train.get("seeds") or {}, key=int) if train else []
        rows.append({"model": name, "family": mcfg.family, "dataset": mcfg.dataset,
                     "settings": ", ".join(f"{k}={_short(v)}" for k, v in settings.items()),
                     "seeds trained": (f"seed{'s' * (len(seeds) > 1)} {', '.join(seeds)}"
                                       if seeds else "not trained"),
                     "evaluations": ", ".join(evaluated) or "none"})
    return pd.DataFrame(rows, columns=["model", "family", "dataset", "settings",
                                       "seeds trained", "evaluations"])


def cost_table(metrics: dict[str, dict[str, dict]], F: Flat) -> pd.DataFrame:
    """Training cost per model, and the seconds each evaluation stage took."""
    stages = [s for s in metrics if s != "train"]
    rows = []
    for model, data in metrics.get("train", {}).items():
        f = F["train"][model]
        row = {"model": model, "device": data.get("device", ""),
               "threads": str(data.get("threads", "")),
               "parameters": f"{int(data['n_params']):,}" if _number(data.get("n_params")) else "",
               "epochs": str(data.get("epochs", "")),
               "train time (s)": fmt(f.get("time_s"), 1),
               "throughput (examples/s)": fmt(f.get("examples_per_s"), 0)}
        for stage in stages:
            if model in F[stage]:
                row[f"{stage} (s)"] = fmt(stage_time(F[stage][model]), 1)
        rows.append(row)
    return _frame(rows, ["model", "device", "threads", "parameters", "epochs", "train time (s)",
                         "throughput (examples/s)", *[f"{s} (s)" for s in stages]])


OBJECTIVE = "objective (own loss)"


def objective_tables(metrics: dict[str, dict[str, dict]], F: Flat
                     ) -> list[tuple[str, pd.DataFrame]]:
    """Test-set numbers after training, one table per (dataset, likelihood kind): the
    model's own objective (what it minimised: not comparable across families) and, where
    the model has them, the ELBO, the exact log p(x) and the NLL upper bound."""
    rows = []
    for model, data in metrics.get("train", {}).items():
        f = F["train"][model]
        rows.append({"group": group_of(data), "model": model, "family": data.get("family", ""),
                     OBJECTIVE: fmt(f.get("test.loss")), "ELBO": fmt(f.get("test.elbo")),
                     "exact log p(x)": fmt(f.get("test.log_px")),
                     "NLL upper bound": fmt(f.get("diagnostics.nll_bound"))})
    return by_group(rows, ["model", "family", OBJECTIVE, "ELBO", "exact log p(x)",
                           "NLL upper bound"])


def diagnostics_table(F: Flat, skip: tuple[str, ...] = ()) -> pd.DataFrame:
    """Family-specific numbers the models report after training: one row per model, its
    diagnostics as ``name value`` pairs (they differ per family)."""
    rows = []
    for model, f in F.get("train", {}).items():
        pairs = [f"{key.removeprefix('diagnostics.')} {fmt_auto(c)}" for key, c in f.items()
                 if key.startswith("diagnostics.") and key.removeprefix("diagnostics.") not in skip]
        if pairs:
            rows.append({"model": model, "diagnostics": "; ".join(pairs)})
    return pd.DataFrame(rows, columns=["model", "diagnostics"])


def loglik_ks(metrics: dict[str, dict[str, dict]]) -> list[int]:
    """Every K any log-likelihood file reports, ascending."""
    ks = set()
    for data in metrics.get("loglik", {}).values():
        ks.update(int(k) for k in data.get("ks") or [])
    return sorted(ks)


def largest_k(data: dict) -> int | None:
    return max((int(k) for k in data.get("ks") or []), default=None)


def likelihood_tables(cfg: Params, metrics: dict[str, dict[str, dict]], F: Flat
                      ) -> list[tuple[str, pd.DataFrame]]:
    """One table per (dataset, likelihood kind): ELBO, L_K = log p̂_K(x) at every K, and at
    each model's largest K (K lists may differ per dataset): its gain over the ELBO (a
    paired difference, so its SE is small) and the naive estimate; the exact value where
    known, KL, active units, the inference gaps."""
    ks = loglik_ks(metrics)
    cols = ["model", "ELBO", *[f"log p̂ K={k}" for k in ks], "largest K",
            "log p̂ − ELBO", "naive", "exact log p", "KL", "active units",
            "approximation gap", "amortisation gap"]
    rows = []
    for model, f in F.get("loglik", {}).items():
        kmax = largest_k(metrics["loglik"][model])
        active = fmt(f.get("active_units"), 1)
        if active and model in cfg.models:
            active += f" / {cfg.models[model].latent_dim}"
        rows.append({"group": group_of(metrics["loglik"][model]), "model": model,
                     "ELBO": fmt(f.get("elbo")),
                     **{f"log p̂ K={k}": fmt(f.get(f"log_p_hat.k{k}")) for k in ks},
                     "largest K": str(kmax or ""),
                     "log p̂ − ELBO": fmt(f.get(f"log_p_hat.k{kmax}.minus_elbo")),
                     "naive": fmt(f.get(f"naive.k{kmax}")),
                     "exact log p": fmt(f.get("exact")),
                     "KL": fmt(f.get("kl")), "active units": active,
                     "approximation gap": fmt(f.get("gaps.approximation")),
                     "amortisation gap": fmt(f.get("gaps.amortisation"))})
    return by_group(rows, cols)


NLL_PARTS = ("nll_bound", "recon_nll", "code_nll")


def nll_tables(metrics: dict[str, dict[str, dict]], F: Flat) -> list[tuple[str, pd.DataFrame]]:
    """Test negative log-likelihood of every model that has one, ranked (lowest first)
    within each (dataset, likelihood kind): -log p̂_K (importance sampling, largest K) and
    the upper bounds of models without a density for q (VQ models: reconstruction + code
    prior, from the train stage)."""
    rows = []
    for model, f in F.get("loglik", {}).items():
        kmax = largest_k(metrics["loglik"][model])
        c = f.get(f"log_p_hat.k{kmax}")
        if c is not None:
            rows.append({"group": group_of(metrics["loglik"][model]), "model": model,
                         "NLL (nats)": fmt(Cell(-c.value, c.stderr, c.ci95)),
                         "quantity": f"−log p̂_K, K={kmax} (estimate)", "_v": -c.value})
    for model, f in F.get("train", {}).items():
        c = f.get("diagnostics.nll_bound")
        if c is not None:
            parts = ", ".join(f"{p} {f[f'diagnostics.{p}'].value:.2f}" for p in NLL_PARTS[1:]
                              if f"diagnostics.{p}" in f)
            rows.append({"group": group_of(metrics["train"][model]), "model": model,
                         "NLL (nats)": fmt(c), "_v": c.value,
                         "quantity": "upper bound" + (f" ({parts})" if parts else "")})
    # a NaN / inf result keeps its row, ranked last in its group (sorting NaN is undefined)
    ranked = sorted(rows, key=lambda r: (r["group"], not math.isfinite(r["_v"]),
                                         r["_v"] if math.isfinite(r["_v"]) else 0.0))
    return by_group([{k: v for k, v in r.items() if k != "_v"} for r in ranked],
                    ["model", "NLL (nats)", "quantity"])


DISENTANGLEMENT = {  # metric path -> column (disentanglement_lib's headline scores)
    "beta_vae.eval_accuracy": "BetaVAE", "factor_vae.eval_accuracy": "FactorVAE",
    "mig.mig": "MIG", "dci.disentanglement": "DCI disent.", "dci.completeness": "DCI compl.",
    "dci.informativeness_test": "DCI inform.", "sap.sap": "SAP",
    "modularity.modularity": "Modularity", "modularity.explicitness_test": "Explicitness",
}


def disentanglement_table(F: Flat) -> pd.DataFrame:
    rows = [{"model": model, **{col: fmt(f.get(key), 3) for key, col in DISENTANGLEMENT.items()}}
            for model, f in F.get("disentangle", {}).items()]
    return _frame(rows, ["model", *DISENTANGLEMENT.values()])


def attributes_table(F: Flat) -> pd.DataFrame:
    """Attribute vectors: how often the shifted code decodes to the target factor value,
    beside the same rate for the plain reconstruction (the baseline)."""
    names = sorted({k.split(".")[1] for f in F.get("disentangle", {}).values() for k in f
                    if k.startswith("attributes.") and k.endswith(".hit_rate")})
    rows = []
    for model, f in F.get("disentangle", {}).items():
        row = {"model": model}
        for a in names:
            hit = f.get(f"attributes.{a}.hit_rate")
            base = f.get(f"attributes.{a}.baseline_hit_rate")
            row[a] = fmt(hit, 2) + (f" (recon {base.value:.2f})" if hit and base else "")
        rows.append(row)
    return _frame(rows, ["model", *names])


ROBUSTNESS_EXTRA = ("recon_err_clean", "elbo_clean", "probe_acc_clean", "jacobian_frob")
# The robustness stage's curve metrics, in the order the report shows them.
ROBUSTNESS_METRICS = ("recon_err", "code_dist", "kl", "delta_elbo", "probe_acc", "latent",
                      "output")
_AUC = re.compile(r"auc_(?P<group>.+?)_(?P<metric>%s)" % "|".join(ROBUSTNESS_METRICS))


def split_auc(key: str) -> tuple[str, str] | None:
    """``auc_<group>_<metric>`` -> (group, metric) for the known curve metrics, else None
    (per-factor probe accuracies ``..._probe_acc_<factor>`` included)."""
    m = _AUC.fullmatch(key)
    return (m["group"], m["metric"]) if m else None


def robustness_table(F: Flat) -> pd.DataFrame:
    """Curve summaries (normalised AUC: the mean height of the curve over the level range)
    and clean values: one row per (corruption or attack, metric), one column per model.
    Per-factor probe accuracies and any other key stay in results.csv."""
    by_model = F.get("robustness", {})
    found = {split_auc(k) for f in by_model.values() for k in f if k.startswith("auc_")}
    found.discard(None)
    groups = sorted({g for g, _ in found}, key=lambda g: (g.startswith("attack"), g))
    rows = []
    for group in groups:
        for metric in ROBUSTNESS_METRICS:
            if (group, metric) in found:
                key = f"auc_{group}_{metric}"
                rows.append({"curve": group, "metric": f"{metric} (AUC)",
                             **{m: fmt_auto(f.get(key)) for m, f in by_model.items()}})
    for key in ROBUSTNESS_EXTRA:
        if any(key in f for f in by_model.values()):
            rows.append({"curve": "clean" if key != "jacobian_frob" else "encoder",
                         "metric": key, **{m: fmt_auto(f.get(key)) for m, f in by_model.items()}})
    return pd.DataFrame(rows, columns=["curve", "metric", *by_model])


SAMPLE_ROWS = (("samples", "samples"), ("reconstructions", "recon"))


def samplequality_tables(metrics: dict[str, dict[str, dict]], F: Flat
                         ) -> list[tuple[str, pd.DataFrame, dict]]:
    """One table per dataset: Fréchet distance in its classifier's features and k-NN
    precision / recall of samples and of reconstructions, against the same held-out test
    images; the first row is the floor (training images against them). Returns
    ``[(dataset, frame, the feature net's test accuracy)]``."""
    by_dataset: dict[str, list[str]] = {}
    for model, data in metrics.get("samplequality", {}).items():
        by_dataset.setdefault(data.get("dataset", ""), []).append(model)
    out = []
    for dataset, models in by_dataset.items():
        fd = f"fd_{dataset}classifier"
        cols = {}
        for part, label in SAMPLE_ROWS:
            cols.update({f"{part}.{fd}": f"{fd} ({label})", f"{part}.precision":
                         f"precision ({label})", f"{part}.recall": f"recall ({label})"})
        first = F["samplequality"][models[0]]
        rows = [{"model": "training images (floor)",
                 **{col: fmt_auto(first.get(f"floor.{key.split('.', 1)[1]}"))
                    for key, col in cols.items() if key.startswith("samples.")}}]
        rows += [{"model": m, **{col: fmt_auto(F["samplequality"][m].get(key))
                                 for key, col in cols.items()}} for m in models]
        accuracy = (metrics["samplequality"][models[0]].get("featurenet") or {}).get(
            "test_accuracy") or {}
        out.append((dataset, _frame(rows, ["model", *cols.values()]), accuracy))
    return out


def headline(metrics: dict[str, dict[str, dict]], F: Flat) -> dict:
    """The few numbers per model that ``dvc exp show`` should list (means over seeds)."""
    out: dict[str, dict] = {}

    def put(model, stage, name, cell):
        if cell is not None:
            out.setdefault(model, {}).setdefault(stage, {})[name] = round(cell.value, 6)

    for model, f in F.get("train", {}).items():
        put(model, "train", "test_loss", f.get("test.loss"))
        put(model, "train", "time_s", f.get("time_s"))
        put(model, "train", "n_params", f.get("n_params"))
        put(model, "train", "nll_bound", f.get("diagnostics.nll_bound"))
    for model, f in F.get("loglik", {}).items():
        kmax = largest_k(metrics["loglik"][model])
        put(model, "loglik", "elbo", f.get("elbo"))
        put(model, "loglik", f"log_p_hat_k{kmax}", f.get(f"log_p_hat.k{kmax}"))
        put(model, "loglik", "active_units", f.get("active_units"))
    for model, f in F.get("disentangle", {}).items():
        for key in DISENTANGLEMENT:
            put(model, "disentangle", key.replace(".", "_"), f.get(key))
    for model, f in F.get("robustness", {}).items():
        for key, cell in f.items():
            if key.startswith("auc_") and key.endswith(("_recon_err", "_latent", "_output")):
                put(model, "robustness", key, cell)
        put(model, "robustness", "jacobian_frob", f.get("jacobian_frob"))
    for model, f in F.get("samplequality", {}).items():
        for key, cell in f.items():
            if key.startswith("samples.") and key.removeprefix("samples.").startswith("fd_"):
                put(model, "samplequality", key.replace(".", "_"), cell)
    return out
