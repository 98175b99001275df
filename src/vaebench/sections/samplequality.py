"""``samplequality:`` -- the schema of the sample-quality stage's section and of its feature
nets (vaebench.evaluate.samplequality, vaebench.evaluate.featurenet), its checks, and which
models it evaluates."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from vaebench.schema import ConfigError, Strict, reject_renamed
from vaebench.sections import Applicability, Device, Section, capabilities

if TYPE_CHECKING:
    from vaebench.config import Params


class FeatureNetConfig(Strict):
    """``samplequality.featurenet``: the conv classifier of each dataset (evaluate/featurenet.py)."""

    # the featurenet@<dataset> stages (dvc.yaml's foreach reads this list from the base
    # section, so a profile may not change it)
    datasets: list[str] = []
    n_train: PositiveInt | None = None   # a seeded random subset of the training split (None: all)
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 3e-3
    channels: PositiveInt = 32           # width of every conv layer
    feature_dim: PositiveInt = 64        # the penultimate layer: the feature space
    seed: NonNegativeInt = 0


class SampleQualityConfig(Strict):
    """``samplequality:`` -- Fréchet distance and k-NN precision/recall of samples and
    reconstructions in the feature net's space (evaluate/samplequality.py)."""

    n_reference: Annotated[int, Field(ge=2)] = 5000   # held-out test images compared with
    n_samples: Annotated[int, Field(ge=2)] = 5000     # samples / reconstructions / train images
    kth_neighbour: PositiveInt = Field(
        3, description="the manifold radius: the distance to the k-th nearest neighbour; "
                       "k in Kynkaanniemi et al. 2019")
    batch_size: PositiveInt = 500
    seed: NonNegativeInt = 0              # sampling and the floor's training subset
    device: Device | None = None          # None: the top-level ``device``
    featurenet: FeatureNetConfig = FeatureNetConfig()
    datasets: dict[str, dict[str, Any]] = {}   # dataset name -> overrides of the sizes above
    renamed = {"k": "kth_neighbour"}

    def for_dataset(self, dataset: str) -> "SampleQualityConfig":
        """This section with the overrides of ``datasets.<dataset>`` applied."""
        over = self.datasets.get(dataset)
        if not over:
            return self
        return SampleQualityConfig.model_validate({**self.model_dump(exclude={"datasets"}),
                                                   **over})

    @model_validator(mode="after")
    def _consistent(self):
        for name, over in self.datasets.items():
            reject_renamed(SampleQualityConfig, over, f"datasets.{name}")
            nested = {"datasets", "featurenet"} & set(over)
            if nested:
                raise ValueError(f"datasets.{name}: overrides cannot set {sorted(nested)}")
            try:
                sized = self.for_dataset(name)
            except ValidationError as err:
                e = err.errors()[0]
                where = ".".join(["datasets", name, *map(str, e["loc"])])
                raise ValueError(f"{where}: {e['msg'].removeprefix('Value error, ')}") from None
            sized._k_fits()
        return self._k_fits()

    def _k_fits(self):
        if self.kth_neighbour >= min(self.n_reference, self.n_samples):
            raise ValueError(f"kth_neighbour ({self.kth_neighbour}) must be below n_reference "
                             f"({self.n_reference}) and n_samples ({self.n_samples}): a k-th "
                             f"neighbour needs k others")
        return self


def check(cfg: Params, overlay: dict[str, Any], profile: str) -> None:
    """Every model in ``evaluate.samplequality`` needs its dataset's feature net; the list
    of feature nets drives dvc.yaml's foreach, read from the base section only."""
    if "datasets" in ((overlay.get("samplequality") or {}).get("featurenet") or {}):
        raise ConfigError(f"profiles.{profile}.samplequality.featurenet.datasets: set it in "
                          f"the base samplequality section only (dvc.yaml's featurenet "
                          f"stages are generated from that list)")
    scfg = cfg.section("samplequality")
    for dataset in [*scfg.featurenet.datasets, *scfg.datasets]:
        if dataset not in cfg.datasets:
            raise ConfigError(f"samplequality (profile {profile}): no dataset {dataset!r} in "
                              f"datasets; known: {sorted(cfg.datasets)}")
    if cfg.evaluate.samplequality and "featurenet" in cfg.models:
        raise ConfigError("models.featurenet: the name is taken by the feature nets' folder "
                          "models/featurenet/; rename the model")
    for name in cfg.evaluate.samplequality:
        dataset = cfg.models[name].dataset
        if dataset not in scfg.featurenet.datasets:
            raise ConfigError(
                f"evaluate.samplequality: model {name!r} is trained on {dataset!r}, which has "
                f"no feature net; add it to samplequality.featurenet.datasets (listed: "
                f"{scfg.featurenet.datasets})")


def _generates_images(cls) -> bool:
    """Can the class's ``sample(n)`` return images: it declares ``Generative``
    (docs/model_contract.md) and takes single images, not sequences."""
    caps = capabilities()
    return issubclass(cls, caps.Generative) and not issubclass(cls, caps.SequenceInputs)


APPLIES = Applicability(
    _generates_images,
    "generates no single images (it needs image inputs and a prior() to decode draws of, "
    "or its own sample(): VAEs, autoencoders with the ex-post density, VQ models with a "
    "code prior)")

SECTION = Section("samplequality", SampleQualityConfig, applies=APPLIES, check=check)
