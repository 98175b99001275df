"""One module per section of ``params.yaml``, owned by the stage that reads it.

Each module (``train``, ``loglik``, ``robustness``, ``disentangle``, ``samplequality``)
holds its section's pydantic schema, the checks that need the rest of the parameters
(models, datasets), and -- for a stage that runs once per listed model -- its
applicability rule: which model classes it can evaluate. It exports one ``SECTION``
(a :class:`Section`); :mod:`vaebench.config` composes them into the ``params.yaml``
schema. These modules import pydantic only (torch and the registries lazily, inside the
checks), so ``vaebench --help`` and the schema stay light.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, NamedTuple

from pydantic import AfterValidator

from vaebench.schema import Strict

if TYPE_CHECKING:
    from vaebench.config import Params

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _check_device(value: str) -> str:
    if not DEVICE_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a device; valid: auto, cpu, cuda, cuda:N, mps")
    return value


# A torch device name; every stage section may set its own (None: the top-level ``device``).
Device = Annotated[str, AfterValidator(_check_device)]


class Applicability(NamedTuple):
    """Which models a per-model stage can evaluate: a test on the model's class (on the
    capabilities it declares, see ``capabilities()``), and what a refused class lacks (it
    completes "model 'x' (family 'f') ...")."""

    test: Callable[[type], bool]
    missing: str


def capabilities():
    """``vaebench.models.capabilities``, imported when a rule is tested: it imports torch,
    which the schemas never need."""
    from vaebench.models import capabilities as caps
    return caps


@dataclass(frozen=True)
class Section:
    """A section of ``params.yaml`` as its stage declares it.

    ``applies`` set: the stage runs once per model listed under ``evaluate.<name>``, and
    ``vaebench check`` refuses a listed model whose class fails the test. ``check``
    (every profile) and ``warn`` (the active profile only) see the resolved parameters;
    ``check`` also gets the profile's raw overlay, for rules on what a profile may set.
    """

    name: str
    schema: type[Strict]
    applies: Applicability | None = None
    check: Callable[[Params, dict[str, Any], str], None] | None = None
    warn: Callable[[Params, str], None] | None = None


def warn(message: str) -> None:
    """A problem worth knowing that does not stop the run (stderr, once per call)."""
    print(f"vaebench: warning: {message}", file=sys.stderr)
