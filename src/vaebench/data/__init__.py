"""Dataset registry: the name used in ``params.yaml`` -> its module.

A dataset module defines its params block's class (``MNISTConfig``, ...) and names it
``CONFIG``, and ``prepare(cfg, raw_dir, out_dir) -> meta``, which writes the common format of
:mod:`vaebench.data.base`, ``image_shape(cfg)`` (the (C, H, W) it will write, so a
model can be checked against it before any data exists) and ``BINARY`` (whether
its pixels are already 0/1). A dataset with ground-truth factors that can be
drawn for any factor combination also sets ``GROUND_TRUTH_FACTORS = True`` and
defines ``FACTOR_NAMES``, ``FACTOR_SIZES`` and ``Images(raw_dir)`` (factors (n, F)
-> images); the disentanglement evaluation needs exactly these.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from vaebench.data import dsprites, mnist, moving_sprites
from vaebench.data.base import DataError, PreparedData, load_prepared
from vaebench.schema import ConfigError, validate

DATASETS: dict[str, ModuleType] = {"dsprites": dsprites, "mnist": mnist,
                                    "moving_sprites": moving_sprites}


def get_dataset(name: str) -> ModuleType:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name]


def prepare_stage(cfg, name: str, raw_dir: Path, out_dir: Path) -> dict:
    """``prepare@<name>``: write ``out_dir`` deterministically (see :mod:`vaebench.data.base`)."""
    if name not in cfg.datasets:
        raise ConfigError(f"dataset {name!r} is not in params.yaml datasets; "
                          f"known: {sorted(cfg.datasets)}")
    from vaebench import io
    from vaebench.data.base import PREPARED_FILES
    io.check_replaceable(out_dir, PREPARED_FILES)
    meta = get_dataset(name).prepare(cfg.datasets[name], Path(raw_dir), Path(out_dir))
    print(f"prepared {name}: {meta['n_train']} train / {meta['n_test']} test images "
          f"from {meta['source']}")
    return meta


def validate_dataset_config(name: str, block: Any, where: str) -> Any:
    if name not in DATASETS:
        raise ConfigError(f"datasets.{name}: unknown dataset; known: {sorted(DATASETS)}")
    return validate(DATASETS[name].CONFIG, block, where)


__all__ = ["DATASETS", "DataError", "PreparedData", "get_dataset", "load_prepared",
           "validate_dataset_config"]
