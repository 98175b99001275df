"""``disentangle:`` -- the schema of the disentanglement stage's section
(vaebench.evaluate.disentangle), its checks against the datasets' factors, and which
models it evaluates."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from vaebench.schema import ConfigError, Strict
from vaebench.sections import Applicability, Device, Section, capabilities

if TYPE_CHECKING:
    from vaebench.config import Params


# Defaults are disentanglement_lib's study protocol (Locatello et al. 2019, arXiv:1811.12359); the
# field names are the keyword arguments of each metric's ``compute``.

class BetaVAEMetricConfig(Strict):
    batch_size: PositiveInt = 64      # pairs per point
    num_train: PositiveInt = 10000
    num_eval: PositiveInt = 5000


class FactorVAEMetricConfig(Strict):
    batch_size: Annotated[int, Field(ge=2)] = 64   # a variance needs two codes
    num_train: PositiveInt = 10000    # votes
    num_eval: PositiveInt = 5000
    num_variance_estimate: Annotated[int, Field(ge=2)] = 10000
    prune_threshold: NonNegativeFloat = 0.05        # dims with global std below are dropped


class MIGMetricConfig(Strict):
    num_train: PositiveInt = 10000
    n_bins: PositiveInt = 20


class DCIMetricConfig(Strict):
    num_train: PositiveInt = 10000
    num_test: PositiveInt = 5000
    n_estimators: PositiveInt = 100   # boosting stages of each GradientBoostingClassifier


class SAPMetricConfig(Strict):
    num_train: PositiveInt = 10000
    num_test: PositiveInt = 5000
    svm_c: PositiveFloat = 0.01       # LinearSVC regularisation C


class ModularityMetricConfig(Strict):
    num_train: PositiveInt = 10000
    num_test: PositiveInt = 5000
    n_bins: PositiveInt = 20


class DisentangleMetricsConfig(Strict):
    """``disentangle.metrics``: one block per metric (every metric always runs)."""

    beta_vae: BetaVAEMetricConfig = BetaVAEMetricConfig()
    factor_vae: FactorVAEMetricConfig = FactorVAEMetricConfig()
    mig: MIGMetricConfig = MIGMetricConfig()
    dci: DCIMetricConfig = DCIMetricConfig()
    sap: SAPMetricConfig = SAPMetricConfig()
    modularity: ModularityMetricConfig = ModularityMetricConfig()


class TraversalConfig(Strict):
    """``disentangle.traversals``: each code dimension swept around a few test images."""

    n_images: PositiveInt = 3
    n_steps: Annotated[int, Field(ge=2)] = 9
    limit: PositiveFloat = 3.0        # sweep +-limit standard deviations (prior's, else codes')


class FactorClassifierConfig(Strict):
    """``disentangle.attributes.classifier``: the judge of decoded images (an MLP)."""

    n_train: PositiveInt = 20000      # rendered images with uniform factors
    n_test: PositiveInt = 5000        # held out: its accuracy is reported
    epochs: PositiveInt = 15
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 3e-3
    hidden: PositiveInt = 256
    crop: Annotated[int, Field(ge=4)] = 24   # side of the centroid-centred window (pixels)


class AttributeConfig(Strict):
    """One attribute vector: factor ``factor`` moved from class ``source`` to ``target``."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]
    factor: str
    source: NonNegativeInt
    target: NonNegativeInt
    tolerance: NonNegativeInt = 0     # a prediction within this many classes is a hit

    @model_validator(mode="after")
    def _distinct(self):
        if self.source == self.target:
            raise ValueError(f"source and target must differ (both {self.source})")
        return self


class AttributeVectorsConfig(Strict):
    """``disentangle.attributes``: attribute vectors in code space (White 2016, arXiv:1609.04468)."""

    n_vector: PositiveInt = 1000      # images per factor value for the mean code difference
    n_apply: PositiveInt = 500        # other images the vector is added to
    n_examples: PositiveInt = 3       # shown in the figure
    classifier: FactorClassifierConfig = FactorClassifierConfig()
    items: list[AttributeConfig] = []

    @model_validator(mode="after")
    def _unique_names(self):
        names = [a.name for a in self.items]
        if len(set(names)) != len(names):
            raise ValueError(f"attribute names must be distinct (got {names})")
        return self


class DisentangleConfig(Strict):
    """``disentangle:`` -- metrics, traversals and attribute vectors on ground-truth factors."""

    representation: Literal["mean", "sampled"] = "mean"   # model.represent(x) | q(z|x).sample()
    seed: NonNegativeInt = 0          # every random draw of the stage derives from it
    encode_batch_size: PositiveInt = 1000
    blas_threads: PositiveInt | None = 1   # BLAS threads of the sklearn fits (None: library default)
    device: Device | None = None      # None: the top-level ``device``
    metrics: DisentangleMetricsConfig = DisentangleMetricsConfig()
    traversals: TraversalConfig = TraversalConfig()
    attributes: AttributeVectorsConfig = AttributeVectorsConfig()


def check(cfg: Params, overlay: dict[str, Any], profile: str) -> None:
    """Models in ``evaluate.disentangle`` need a dataset with ground-truth factors, and
    every attribute vector must name one of its factors and valid classes."""
    from vaebench.data import get_dataset
    attributes = cfg.section("disentangle").attributes.items
    for name in cfg.evaluate.disentangle:
        dataset = cfg.models[name].dataset
        module = get_dataset(dataset)
        if not getattr(module, "GROUND_TRUTH_FACTORS", False):
            raise ConfigError(
                f"evaluate.disentangle: model {name!r} is trained on {dataset!r}, which has no "
                f"ground-truth factors to sample from; disentanglement applies only to models "
                f"of datasets with GROUND_TRUTH_FACTORS (e.g. dsprites)")
        sizes = dict(zip(module.FACTOR_NAMES, module.FACTOR_SIZES))
        for i, attr in enumerate(attributes):
            where = f"disentangle.attributes.items[{i}] ({attr.name}, profile {profile})"
            if attr.factor not in sizes:
                raise ConfigError(f"{where}: factor {attr.factor!r} is not a factor of "
                                  f"{dataset!r} (model {name!r}); valid: {list(sizes)}")
            for key in ("source", "target"):
                if getattr(attr, key) >= sizes[attr.factor]:
                    raise ConfigError(
                        f"{where}: {key} {getattr(attr, key)} is out of range for factor "
                        f"{attr.factor!r} of {dataset!r}: valid 0..{sizes[attr.factor] - 1}")


APPLIES = Applicability(
    lambda cls: not issubclass(cls, capabilities().SequenceInputs),
    "does not encode single images (the metrics encode rendered images of chosen factors)")

SECTION = Section("disentangle", DisentangleConfig, applies=APPLIES, check=check)
