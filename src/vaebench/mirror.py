"""The stages' output files, mirrored into MLflow: one function per stage.

Stages only write files. ``vaebench mlflow-sync`` -- the pipeline's last stage,
``mlflow``, and the replay command -- calls the function of every stage here on
the files on disk, in one process, into the run of each (model, seed, checkpoint)
that :func:`vaebench.tracking.model_run` finds again (or creates); logging the
same files twice adds nothing. A new evaluation stage adds its function and one
entry in ``STAGES``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

from vaebench import io, tracking


def _seeds(metrics: dict, order: list | None = None) -> list[int]:
    """The seeds a metrics JSON holds, in ``order`` (the config's) where given."""
    seeds = [int(s) for s in metrics["seeds"]]
    return [s for s in order if s in seeds] if order else sorted(seeds)


def _checkpoint(models_dir: Path, seed: int) -> Path:
    return Path(models_dir) / f"seed{seed}.pt"


def span(record: dict) -> tuple[int, int] | None:
    """(start, end) in ms since the epoch of one seed's work, from the ``started`` and
    ``finished`` times its stage recorded; None for files written before they were."""
    try:
        return tuple(int(datetime.fromisoformat(record[k]).timestamp() * 1000)
                     for k in ("started", "finished"))
    except (KeyError, TypeError, ValueError):
        return None


def dataset_digest(meta: dict) -> str:
    """A short digest of a prepared dataset: of the SHA-256 of each of its files, as
    ``prepare`` recorded them in meta.json (MLflow keeps at most 36 characters)."""
    return hashlib.sha256(json.dumps(meta["sha256"], sort_keys=True).encode()).hexdigest()[:32]


def read_curve(path: Path) -> Iterator[tuple[int, dict]]:
    """(epoch, {"train": {...}, "test": {...}}) per row of a training-curve CSV; empty
    and NaN cells (test terms of epochs without an evaluation) are left out."""
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            terms: dict = {"train": {}, "test": {}}
            for column, cell in row.items():
                split, _, key = column.partition("_")
                if split in terms and cell not in ("", None) and not math.isnan(float(cell)):
                    terms[split][key] = float(cell)
            yield int(row["epoch"]), terms


def train(metrics_path: Path, models_dir: Path, plots_dir: Path,
          figures_dir: Path | None = None, data_dir: Path | None = None) -> None:
    """``train@<model>``: per seed, params (model, training, data), the training curves,
    the final metrics, the checkpoint and its config; the first seed gets the figures."""
    models_dir, plots_dir = Path(models_dir), Path(plots_dir)
    metrics = io.read_json(metrics_path)
    config = io.read_json(models_dir / "config.json")
    meta_path = Path(data_dir) / "meta.json" if data_dir is not None else None
    meta = io.read_json(meta_path) if meta_path is not None and meta_path.is_file() else None
    data = {k: meta[k] for k in ("source", "n_train", "n_test")} if meta else None
    tags = {k: metrics[k] for k in ("family", "dataset", "profile", "device")}
    seeds = _seeds(metrics, config.get("seeds"))
    for seed in seeds:
        ckpt = _checkpoint(models_dir, seed)
        with tracking.model_run(metrics["model"], seed, io.sha256_file(ckpt), tags,
                                stage=f"train@{metrics['model']}",
                                span=span(metrics["seeds"][str(seed)])) as run:
            if run is None:
                continue
            params = {"model": config["model"], "train": config["train"],
                      "epochs": config["epochs"], "seed": seed}
            run.log_params({**params, **({"data": data} if data else {})})
            if meta:
                run.log_dataset(meta["dataset"], dataset_digest(meta), data_dir,
                                {k: meta[k] for k in ("n_train", "n_test", "image_shape")},
                                context="training")
            for epoch, terms in read_curve(plots_dir / f"seed{seed}.csv"):
                run.log_metrics(terms, prefix="curve", step=epoch)
            run.log_metrics({**metrics["seeds"][str(seed)], "n_params": metrics["n_params"]},
                            prefix="final")
            run.log_artifact(ckpt, "checkpoint")
            run.log_artifact(models_dir / "config.json", "checkpoint")
            if seed == seeds[0] and figures_dir is not None:
                for path in sorted(Path(figures_dir).glob("*.png")):
                    run.log_artifact(path, "figures")


def _evaluation(stage: str, metrics_path: Path, models_dir: Path, prefix: str,
                artifacts: list[Path] = (), artifact_dir: str | None = None,
                first_seed_only: bool = False, extra: dict | None = None) -> None:
    """An evaluation stage: each seed's results (the ``seeds`` block of its JSON, plus
    ``extra``) as ``<prefix>/...`` metrics on the run of the checkpoint it evaluated."""
    metrics = io.read_json(metrics_path)
    seeds = _seeds(metrics)
    for seed in seeds:
        ckpt = _checkpoint(models_dir, seed)
        with tracking.model_run(metrics["model"], seed, io.sha256_file(ckpt),
                                stage=f"{stage}@{metrics['model']}",
                                span=span(metrics["seeds"][str(seed)])) as run:
            if run is None:
                continue
            run.log_metrics({**metrics["seeds"][str(seed)], **(extra or {})}, prefix=prefix)
            if seed == seeds[0] or not first_seed_only:
                for path in artifacts:
                    run.log_artifact(path, artifact_dir or prefix)


def loglik(metrics_path: Path, models_dir: Path) -> None:
    """``loglik@<model>``: the log-likelihood numbers of every seed (``loglik/...``)."""
    _evaluation("loglik", metrics_path, models_dir, "loglik")


def robustness(metrics_path: Path, models_dir: Path, plots_dir: Path) -> None:
    """``robustness@<model>``: numbers per seed (``robust/...``) and the curve CSVs."""
    _evaluation("robustness", metrics_path, models_dir, "robust", sorted(Path(plots_dir).glob("*.csv")))


def disentangle(metrics_path: Path, models_dir: Path, figures_dir: Path) -> None:
    """``disentangle@<model>``: numbers per seed with the judge classifier's accuracy
    (``disent/...``); the figures (drawn for the first seed) on the first seed's run."""
    classifier = io.read_json(metrics_path).get("classifier") or {}
    _evaluation("disentangle", metrics_path, models_dir, "disent", sorted(Path(figures_dir).glob("*.png")),
                "figures/disentangle", first_seed_only=True, extra={"classifier": classifier})


REPORT_FILES = ("index.html", "report.md", "results.csv", "headline.json", "claims.json")


def report(out_dir: Path, figures_out: Path, params: dict) -> None:
    """``report``: the report's files on a suite-level run, one per distinct report
    (keyed by a digest of its results and its text, which names the git commit)."""
    out_dir = Path(out_dir)
    digest = hashlib.sha256((out_dir / "results.csv").read_bytes()
                            + (out_dir / "report.md").read_bytes()).hexdigest()
    with tracking.suite_run("suite", {"profile": params["profile"]}, key=digest) as run:
        if run is None:
            return
        run.log_params(params)
        run.log_metrics(io.read_json(out_dir / "headline.json")["headline"])
        for name in REPORT_FILES:
            if (out_dir / name).exists():   # claims.json: reports written before the claims
                run.log_artifact(out_dir / name, "report")
        for path in sorted(Path(figures_out).glob("*.png")):
            run.log_artifact(path, "report/figures")


def report_params(cfg) -> dict:
    """What the suite run records of the config."""
    return {"profile": cfg.profile, "seeds": list(cfg.seeds), "models": list(cfg.models),
            "device": cfg.device}


# stage -> mirror(metrics JSON, model name, roots): the paths of dvc.yaml, from the roots
STAGES = {
    "train": lambda path, model, r: train(
        path, r.models / model, r.plots / "train" / model, r.figures / "train" / model,
        r.data / io.read_json(path)["dataset"]),
    "loglik": lambda path, model, r: loglik(path, r.models / model),
    "robustness": lambda path, model, r: robustness(path, r.models / model,
                                                    r.plots / "robustness" / model),
    "disentangle": lambda path, model, r: disentangle(path, r.models / model,
                                                      r.figures / "disentangle" / model),
}


@dataclass(frozen=True)
class Roots:
    """Where ``sync`` finds each kind of file (dvc.yaml's folders by default)."""
    metrics: Path = Path("reports/metrics")
    models: Path = Path("models")
    plots: Path = Path("reports/plots")
    figures: Path = Path("reports/figures")
    data: Path = Path("data/prepared")


def _stage_models(cfg, stage: str) -> list[str]:
    """The models the pipeline runs ``stage`` for (dvc.yaml's foreach lists)."""
    return list(cfg.models) if stage == "train" else list(getattr(cfg.evaluate, stage))


def sync(cfg, metrics_root: Path = Path("reports/metrics"), models_root: Path = Path("models"),
         plots_root: Path = Path("reports/plots"), figures_root: Path = Path("reports/figures"),
         data_root: Path = Path("data/prepared"), report_dir: Path = Path("reports")) -> dict:
    """Mirror the files of every stage params.yaml defines (the paths of dvc.yaml); return
    the number of metrics files mirrored per stage and of runs in the store before and
    after. A stage whose metrics file or checkpoints are missing is skipped, said once."""
    if not tracking.reachable(warn=False):
        raise tracking.TrackingError(f"the MLflow tracking server {tracking.tracking_uri()} "
                                     f"does not answer; nothing mirrored (start it, or set "
                                     f"MLFLOW_TRACKING_URI to the store to rebuild)")
    roots = Roots(*(Path(p) for p in (metrics_root, models_root, plots_root, figures_root,
                                      data_root)))
    before = tracking.run_count()
    done, skipped = {}, []
    for stage, mirror_stage in STAGES.items():
        done[stage] = 0
        for model in _stage_models(cfg, stage):
            path = roots.metrics / stage / f"{model}.json"
            models_dir = roots.models / model
            if not path.is_file():
                skipped.append(f"{stage}@{model} (no {path})")
                continue
            missing = [s for s in _seeds(io.read_json(path))
                       if not _checkpoint(models_dir, s).is_file()]
            if missing:
                skipped.append(f"{stage}@{model} (no {models_dir}/seed{missing[0]}.pt)")
                continue
            mirror_stage(path, model, roots)
            done[stage] += 1
    if skipped:
        print(f"mlflow-sync: skipped {len(skipped)} stage(s) whose files are missing "
              f"(`dvc pull` or `dvc repro` them): {', '.join(skipped)}")
    report_dir = Path(report_dir)
    done["report"] = int(all((report_dir / f).is_file() for f in REPORT_FILES))
    if done["report"]:
        report(report_dir, roots.figures / "report", report_params(cfg))
    return {"mirrored": done, "runs_before": before, "runs_after": tracking.run_count()}
