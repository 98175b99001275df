"""The base of every config block and its error: a leaf module (it imports nothing from
vaebench), so the dataset and model registries can declare their blocks without importing
:mod:`vaebench.config`, which composes them."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A problem with params.yaml, with the offending key in the message."""


class Strict(BaseModel):
    """Base for every config block: unknown keys are errors, values are immutable.

    Strict types: ``true`` is not an integer and ``1e11`` (a float) is not one either;
    an integer is accepted where a float is expected. NaN and infinities are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def validate(schema: type[BaseModel], data: Any, where: str) -> Any:
    """``data`` (None: empty) validated against ``schema``; a ConfigError naming every bad
    key as ``<where>.<key>`` otherwise."""
    try:
        return schema.model_validate(data if data is not None else {})
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join([where, *map(str, e["loc"])])
            whole = e["type"] == "missing" or isinstance(e.get("input"), dict)
            got = "" if whole else f" (got {e.get('input')!r})"
            lines.append(f"  {key}: {e['msg']}{got}")
        if len(lines) == 1:   # one line, so the first line of the error names the key
            raise ConfigError(f"invalid params.yaml: {lines[0].strip()}") from None
        raise ConfigError("invalid params.yaml:\n" + "\n".join(lines)) from None
