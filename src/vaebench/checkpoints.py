"""Checkpoints: what the train stage writes per seed, and how every later stage reads
it back (:mod:`vaebench.train` writes, :mod:`vaebench.runs` reads for the evaluations)."""
from __future__ import annotations

import pickle
from io import BytesIO
from pathlib import Path

import torch

from vaebench import io
from vaebench.data import DataError
from vaebench.models import Model, build_model, validate_model_config


def save_checkpoint(path: Path, model: Model, meta: dict) -> None:
    """State dict + resolved config; plain tensors and primitives (loads with weights_only)."""
    buffer = BytesIO()  # not the temp file: torch names the archive after the file
    torch.save({"state_dict": model.state_dict(), "config": model.cfg.model_dump(),
                "image_shape": list(model.image_shape), **meta}, buffer)
    with io.atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


class CheckpointError(DataError):
    """A checkpoint that cannot be read, is not vaebench's, or was trained for other
    params than the current ones (the message names the file)."""


# What :func:`save_checkpoint` writes and :func:`load_checkpoint` needs to rebuild the model.
CHECKPOINT_KEYS = ("state_dict", "config", "image_shape")


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """The dict of a vaebench checkpoint; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; run the train stage first")
    rerun = f"re-run `dvc repro -f train@{path.parent.name}`"
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:   # weights_only refused a class, or not a pickle
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a vaebench checkpoint (safe loading refused it: "
                              f"{first}); {rerun}") from None
    except Exception as err:   # a truncated zip archive, an empty file, ...
        detail = str(err).strip().splitlines()[0] if str(err).strip() else "no data"
        raise CheckpointError(f"{path}: cannot be read ({type(err).__name__}: {detail}); "
                              f"the file is truncated or corrupt -- {rerun}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a vaebench checkpoint (no {', '.join(missing)}); "
                              f"{rerun}")
    return ckpt


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[Model, dict]:
    """Rebuild the model of a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    ckpt = read_checkpoint(path, device)
    cfg = validate_model_config(ckpt.get("model", path.parent.name), ckpt["config"])
    model = build_model(cfg, tuple(ckpt["image_shape"])).to(device)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
