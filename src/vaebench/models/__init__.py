"""Model registry: the ``family`` of a ``models.<name>`` block -> its class.

The registry is the package: family ``x`` is the module ``vaebench.models.x``, which
names its class in a module-level ``MODEL = ClassName``. To add a variant: write that one
file and add a block to params.yaml. A family is imported on first use, so a stage loads
(and its code fingerprint, ``vaebench code``, names) only the family it runs.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

from vaebench.codedeps import family_names
from vaebench.models.base import LossTerms, Model, ModelConfig
from vaebench.schema import ConfigError, validate


class _Registry(Mapping[str, type[Model]]):
    """Read-only family -> class; lists the family modules without importing them."""

    @cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(family_names())

    def __getitem__(self, family: str) -> type[Model]:
        if family not in self._names:
            raise KeyError(family)
        # a computed name on purpose: codedeps adds the family's closure per stage
        return importlib.import_module(f"{__name__}.{family}").MODEL

    def __contains__(self, family: object) -> bool:
        return family in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


MODELS: Mapping[str, type[Model]] = _Registry()


def validate_model_config(name: str, block: Any) -> ModelConfig:
    """Validate ``models.<name>`` against its family's config (errors name the key)."""
    if not isinstance(block, dict):
        raise ConfigError(f"models.{name}: expected a mapping, got {type(block).__name__}")
    family = block.get("family")
    if family not in MODELS:
        raise ConfigError(f"models.{name}.family: unknown family {family!r}; "
                          f"valid: {', '.join(sorted(MODELS))}")
    return validate(MODELS[family].Config, block, f"models.{name}")


def build_model(cfg: ModelConfig, image_shape: tuple[int, ...]) -> Model:
    return MODELS[cfg.family](cfg, image_shape)


__all__ = ["MODELS", "LossTerms", "Model", "ModelConfig", "build_model", "validate_model_config"]
