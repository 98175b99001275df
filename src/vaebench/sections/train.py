"""``train:`` -- the schema of the one training loop's section (vaebench.train)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from vaebench.schema import ConfigError, Strict
from vaebench.sections import Device, Section

if TYPE_CHECKING:
    from vaebench.config import Params


class TrainConfig(Strict):
    """``train:`` -- the one training loop (Adam, minibatches sliced on the device)."""

    epochs: PositiveInt | dict[str, PositiveInt] = Field(
        description="epochs, or a mapping dataset name -> epochs")
    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt = 512
    lr: PositiveFloat = 1e-3
    device: Device | None = None  # None: the top-level ``device``
    deterministic: bool = True
    # KL warm-up (deterministic annealing; Bowman et al. 2016, "Generating Sentences from a
    # Continuous Space", arXiv:1511.06349; Sonderby et al. 2016, "Ladder Variational
    # Autoencoders", arXiv:1602.02282): the weight of the KL / log-ratio term rises linearly
    # from 0 to its full value over this many epochs. 0: off. No effect on models without one.
    kl_warmup_epochs: NonNegativeFloat = 0.0

    def warmup_steps(self, steps_per_epoch: int) -> int:
        return round(self.kl_warmup_epochs * steps_per_epoch)

    def epochs_for(self, dataset: str) -> int:
        if isinstance(self.epochs, int):
            return self.epochs
        if dataset not in self.epochs:
            raise ConfigError(
                f"train.epochs has no entry for dataset {dataset!r}; "
                f"it has {sorted(self.epochs)}")
        return self.epochs[dataset]


def check(cfg: Params, overlay: dict[str, Any], profile: str) -> None:
    """Every model's dataset has its epochs, and its own ``train:`` overrides validate."""
    for name, m in cfg.models.items():
        if isinstance(cfg.train.epochs, dict) and not m.train.get("epochs"):
            cfg.train.epochs_for(m.dataset)  # raises if the profile forgot a dataset
        cfg.model_train(name)


# Every model trains: no applicability rule.
SECTION = Section("train", TrainConfig, check=check)
