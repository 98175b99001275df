"""Trained runs as the evaluation stages see them.

An evaluation stage (``loglik``, ``disentangle``, ``robustness``, ...) gets a
model directory ``models/<name>/`` holding one checkpoint per seed. This module
finds those checkpoints, loads each model with its prepared test data, averages
per-seed results -- so every stage does these the same way (:mod:`vaebench.mirror`
then mirrors the files onto each checkpoint's MLflow run).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from vaebench import io
from vaebench.checkpoints import CheckpointError, load_checkpoint, read_checkpoint
from vaebench.config import Params
from vaebench.data import PreparedData, load_prepared
from vaebench.stats import summarise


@dataclass(frozen=True)
class TrainedRun:
    name: str           # the model's name in params.yaml
    seed: int
    checkpoint: Path

    @property
    def sha256(self) -> str:
        return io.sha256_file(self.checkpoint)


def trained_runs(cfg: Params, name: str, models_dir: str | Path) -> list[TrainedRun]:
    """The checkpoints ``seed<k>.pt`` of model ``name`` for exactly params.yaml's seeds,
    each checked to be a training of ``models.<name>`` as params.yaml states it now
    (other files in the folder, e.g. a stale seed, are ignored)."""
    models_dir = Path(models_dir)
    missing = [s for s in cfg.seeds if not (models_dir / f"seed{s}.pt").is_file()]
    if missing:
        raise FileNotFoundError(f"{models_dir}: no checkpoint for seed(s) {missing} of "
                                f"params.yaml seeds {cfg.seeds} (seed<k>.pt); run "
                                f"`dvc repro train@{name}` first")
    found = [TrainedRun(name, s, models_dir / f"seed{s}.pt") for s in cfg.seeds]
    for run in found:
        check_identity(run, cfg.models[name].model_dump())
    return found


def check_identity(run: TrainedRun, config: dict) -> None:
    """Refuse a checkpoint of another model, seed, dataset or config than ``run`` names."""
    ckpt = read_checkpoint(run.checkpoint)
    recorded = {"model": ckpt.get("model"), "seed": ckpt.get("seed"), **_flat(ckpt["config"])}
    wanted = {"model": run.name, "seed": run.seed, **_flat(config)}
    for key in dict.fromkeys([*wanted, *recorded]):   # union, in a stable order
        old, new = recorded.get(key, "<absent>"), wanted.get(key, "<absent>")
        if old != new:
            where = key if key in ("model", "seed") else f"models.{run.name}.{key}"
            raise CheckpointError(
                f"{run.checkpoint}: {where} is {old!r} in the checkpoint but {new!r} in "
                f"params.yaml; it was trained for other params -- re-run "
                f"`dvc repro train@{run.name}`")


def _flat(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load_run(run: TrainedRun, data_root: str | Path, device: torch.device | str = "cpu",
             data_cache: dict | None = None):
    """(model in eval mode, its checkpoint dict, its PreparedData on ``device``)."""
    model, ckpt = load_checkpoint(run.checkpoint, device)
    dataset = ckpt["dataset"]
    if data_cache is not None and dataset in data_cache:
        return model, ckpt, data_cache[dataset]
    data: PreparedData = load_prepared(Path(data_root) / dataset, device)
    if data_cache is not None:
        data_cache[dataset] = data
    return model, ckpt, data


def timestamp() -> str:
    """Now, in UTC, ISO 8601 to the millisecond: a stage records when each seed's work
    started and finished (strings, so no table or mean treats them as results), and
    MLflow's runs take their start and end times from them."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def stage_metrics(name: str, ckpt: dict, per_seed: dict[int, dict], **extra) -> dict:
    """The JSON an evaluation stage writes: identity, mean over seeds, and per seed."""
    return {"model": name, "family": ckpt["config"]["family"], "dataset": ckpt["dataset"],
            "threads": torch.get_num_threads(), **extra, **summarise(per_seed), "seeds": {str(s): r for s, r in per_seed.items()}}

