"""Options of the VAE family: how grad_phi is estimated, how theta and phi are updated.

``VariationalOptions`` is mixed into the VAE config, so every VAE-like family
(``vae``, ``beta_vae``, ...) takes these keys in its ``models.<name>`` block:

    gradient: reparam | score_function    # estimator of grad_phi (models/estimators.py)
    mc_samples: 1                         # Monte Carlo draws of z per example
    baseline: none | leave_one_out        # score_function only
    optimisation: joint | alternating     # SCHEDULES below
    grad_var_repeats: 16                  # gradient-variance diagnostic (0: off)

The two update schedules (joint: the minibatch AEVB step of Kingma & Welling 2014,
Algorithm 1; alternating: block-coordinate steps on theta, then phi) are implemented through
the training loop's generic hooks ``Model.optim_groups`` / ``groups_to_step``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator
from torch import nn

from vaebench.schema import Strict
from vaebench.models.estimators import BASELINES, ESTIMATORS


class Joint:
    """theta and phi step together from one gradient of the loss (Kingma & Welling 2014, Algorithm 1)."""

    @staticmethod
    def groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"all": [p for p in model.parameters() if p.requires_grad]}

    @staticmethod
    def to_step(step: int) -> list[str]:
        return ["all"]


class Alternating:
    """Alternate one step on theta (phi fixed), then one on phi at the new theta (block coordinates):
    theta** <- step on L(theta, phi), phi** <- step on L(theta**, phi), and so on.

    phi is the encoder; theta is every other trainable parameter (decoder, and
    any learned prior). Each group has its own Adam and steps every other
    minibatch, so each sees half as many updates as under ``joint``.
    """

    @staticmethod
    def groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
        phi = [p for p in model.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in phi}
        theta = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        return {"theta": theta, "phi": phi}

    @staticmethod
    def to_step(step: int) -> list[str]:
        return ["theta"] if step % 2 == 0 else ["phi"]


SCHEDULES: dict[str, type] = {"joint": Joint, "alternating": Alternating}


MC_SAMPLES = "Monte Carlo draws of z ~ q(z|x) per example for the expectation in the loss"


class VariationalOptions(Strict):
    """Config keys shared by the VAE family (see the module docstring)."""

    gradient: Literal[tuple(ESTIMATORS)] = "reparam"          # type: ignore[valid-type]
    mc_samples: PositiveInt = Field(1, description=MC_SAMPLES)
    baseline: Literal[tuple(BASELINES)] = "none"              # type: ignore[valid-type]
    optimisation: Literal[tuple(SCHEDULES)] = "joint"         # type: ignore[valid-type]
    grad_var_repeats: NonNegativeInt = 16
    # ``n_samples`` also meant the generated images of ``samplequality``
    renamed = {"n_samples": "mc_samples"}

    @model_validator(mode="after")
    def _consistent(self):
        if self.baseline != "none" and self.gradient != "score_function":
            raise ValueError(f"baseline {self.baseline!r} applies to gradient: score_function "
                             f"only (got gradient: {self.gradient!r}); use baseline: none")
        if self.baseline == "leave_one_out" and self.mc_samples < 2:
            raise ValueError(f"baseline 'leave_one_out' needs mc_samples >= 2 "
                             f"(got mc_samples: {self.mc_samples})")
        if self.grad_var_repeats == 1:
            raise ValueError("grad_var_repeats must be 0 (off) or >= 2 (got 1)")
        return self
