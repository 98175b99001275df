"""``robustness:`` -- the schema of the robustness stage's section
(vaebench.evaluate.robustness) and which models it evaluates."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, NonNegativeInt, PositiveFloat, PositiveInt

from vaebench.schema import Strict
from vaebench.sections import Applicability, Device, Section, capabilities


def _check_levels(levels: list[float]) -> list[float]:
    if not levels or levels[0] != 0:
        raise ValueError(f"levels must start with 0 (the clean point every curve starts "
                         f"from), got {levels}")
    if any(b <= a for a, b in zip(levels[:-1], levels[1:])):
        raise ValueError(f"levels must be strictly increasing, got {levels}")
    return levels


# A severity curve: 0 (clean) first, then increasing levels.
Levels = Annotated[list[Annotated[float, Field(ge=0)]], AfterValidator(_check_levels)]


def _check_corruptions(value: dict[str, list[float]]) -> dict[str, list[float]]:
    import torch  # the corruption processes validate their own levels

    from vaebench.corruptions import CORRUPTIONS
    for name, levels in value.items():
        if name not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}")
        for level in levels:
            CORRUPTIONS[name](torch.zeros(1), level)   # raises ValueError naming the range
    return value


class ProbeConfig(Strict):
    """Linear probes: one logistic regression per factor on clean train codes."""

    n_train: PositiveInt = 2000       # train examples (random subset) the probes fit on
    C: PositiveFloat = 1.0            # inverse L2 regularisation strength
    max_iter: PositiveInt = 500


class JacobianConfig(Strict):
    """Exact encoder Jacobian on ``n`` of the test points (0: skip), ``chunk`` at a time."""

    n: NonNegativeInt = 200
    chunk: PositiveInt = 50


class AttackConfig(Strict):
    """Projected-gradient attacks on ``n`` of the test points."""

    n: PositiveInt = 200
    eps: dict[Literal["l2", "linf"], Levels] = {"l2": [0.0, 0.5, 1.0, 2.0],
                                                "linf": [0.0, 0.02, 0.05, 0.1]}
    steps: NonNegativeInt = 10
    step_size: PositiveFloat = 0.25   # length of one step as a fraction of eps


class RobustnessConfig(Strict):
    """``robustness:`` -- corruptions, encoder sensitivity and attacks (evaluate/robustness.py)."""

    n_test: PositiveInt | None = 1000  # seeded random subset of the test set (None: all)
    batch_size: PositiveInt = 500
    seed: NonNegativeInt = 0           # corruption draws, probe subset, attack starts
    corruptions: Annotated[dict[str, Levels], AfterValidator(_check_corruptions)] = {
        "gaussian": [0.0, 0.1, 0.2, 0.3, 0.5], "masking": [0.0, 0.1, 0.25, 0.5, 0.75],
        "salt_pepper": [0.0, 0.05, 0.1, 0.2, 0.3]}
    elbo_samples: PositiveInt = 1      # z samples per example for the ELBO change
    probe: ProbeConfig = ProbeConfig()
    jacobian: JacobianConfig = JacobianConfig()
    attack: AttackConfig = AttackConfig()
    device: Device | None = None       # None: the top-level ``device``


APPLIES = Applicability(
    lambda cls: not issubclass(cls, (capabilities().SequenceInputs, capabilities().PerDatapoint)),
    "has no amortised encoder of single images (per-image corruptions, the "
    "encoder Jacobian and gradient attacks need one)")

SECTION = Section("robustness", RobustnessConfig, applies=APPLIES)
