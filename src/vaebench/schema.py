"""The base of every config block and its error: a leaf module (it imports nothing from
vaebench), so the dataset and model registries can declare their blocks without importing
:mod:`vaebench.config`, which composes them."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A problem with params.yaml, with the offending key in the message."""


class Strict(BaseModel):
    """Base for every config block: unknown keys are errors, values are immutable.

    Strict types: ``true`` is not an integer and ``1e11`` (a float) is not one either;
    an integer is accepted where a float is expected. NaN and infinities are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    # old key -> its new field, for keys that once meant different things in different blocks;
    # ``validate`` refuses an old key, naming the new field and its ``description``
    renamed: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for old, new in cls.renamed.items():   # a wrong table fails at import, not at a user
            field = cls.model_fields.get(new)
            if old in cls.model_fields or field is None or not field.description:
                raise TypeError(f"{cls.__name__}.renamed: {old!r} -> {new!r} needs {new!r} "
                                f"to be a field with a description and {old!r} not a field")


def reject_renamed(schema: type[BaseModel], data: Any, where: str) -> None:
    """A ConfigError if ``data`` uses a key that ``schema`` renamed: ``<where>.<old> was
    renamed to <new> (<what it means>)``."""
    if not isinstance(data, dict):
        return
    for old, new in getattr(schema, "renamed", {}).items():
        if old in data:
            raise ConfigError(f"{where}.{old} was renamed to {new} "
                              f"({schema.model_fields[new].description})")


def validate(schema: type[BaseModel], data: Any, where: str) -> Any:
    """``data`` (None: empty) validated against ``schema``; a ConfigError naming every bad
    key as ``<where>.<key>`` otherwise (a renamed key first, see :func:`reject_renamed`)."""
    reject_renamed(schema, data, where)
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
