"""Loading and validating ``params.yaml``.

Every stage starts by calling :func:`load_config`, so an unknown key, an unknown
model family, a wrong type or an out-of-range value is reported, naming the
key, before any work is done. The active profile's overlay
(``profiles.<profile>``) is merged onto the base sections first; every profile
is validated, not only the active one, so a typo in ``paper`` is caught while
running ``quick``.

Section schemas live here; model configs live beside their model class and
dataset configs beside their dataset (see the two registries). Their common base
``Strict``, ``ConfigError`` and ``validate`` live in the leaf :mod:`vaebench.schema`
(importable from here as well), so the registries never import this module.
"""
from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from vaebench.schema import ConfigError, Strict, reject_renamed, validate

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _check_device(value: str) -> str:
    if not DEVICE_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a device; valid: auto, cpu, cuda, cuda:N, mps")
    return value


Device = Annotated[str, AfterValidator(_check_device)]


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


class LoglikConfig(Strict):
    """``loglik:`` -- log p(x) at several numbers of importance samples K (Burda et al. 2016).

    Memory is bounded by the two chunk sizes: one decoder call sees
    ``chunk_samples * chunk_points`` rows, and the codes of one K-chunk for the
    whole test subset (``chunk_samples * n_test * latent`` numbers) are held at once.
    ``datasets.<name>`` overrides any key for the models of one dataset (a conv
    decoder on 64x64 images costs ~100x the MLP's per sample on a CPU).
    """

    ks: Annotated[list[PositiveInt], Field(min_length=1)] = Field(
        description="numbers of importance samples K, strictly increasing")
    n_test: PositiveInt | None = None     # the first n_test test images (None: all)
    chunk_points: PositiveInt = 50        # test points per decoder call
    chunk_samples: PositiveInt = 50       # importance samples per decoder call
    active_threshold: PositiveFloat = 0.01  # a unit is active if Var_x E_q[z_u] exceeds it
    kl_dim_samples: PositiveInt = 256     # MC samples for KL per dimension without a closed form
    gap_n: NonNegativeInt = 50            # test points for the inference gaps (0: skip)
    gap_steps: PositiveInt = 100          # Adam steps of the per-datapoint q*
    gap_lr: PositiveFloat = 0.01
    gap_samples: PositiveInt = 8          # reparameterised samples per step
    gap_eval_samples: PositiveInt = 500   # samples for the final ELBOs of q and q*
    seed: NonNegativeInt = 0
    device: Device | None = None          # None: the top-level ``device``
    datasets: dict[str, dict[str, Any]] = {}  # dataset name -> overrides of the keys above

    def for_dataset(self, dataset: str) -> "LoglikConfig":
        """This section with the overrides of ``datasets.<dataset>`` applied."""
        over = self.datasets.get(dataset)
        if not over:
            return self
        return LoglikConfig.model_validate({**self.model_dump(exclude={"datasets"}), **over})

    @field_validator("ks")
    @classmethod
    def _increasing(cls, ks: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(ks, ks[1:])):
            raise ValueError("must be strictly increasing positive integers, e.g. [1, 10, 100]")
        return ks

    @model_validator(mode="after")
    def _consistent(self):
        if self.n_test is not None and self.gap_n > self.n_test:
            raise ValueError(f"gap_n ({self.gap_n}) must not exceed n_test ({self.n_test})")
        for name, over in self.datasets.items():
            if "datasets" in over:
                raise ValueError(f"datasets.{name}: overrides cannot nest 'datasets'")
            try:
                self.for_dataset(name)
            except ValidationError as err:
                e = err.errors()[0]
                where = ".".join(["datasets", name, *map(str, e["loc"])])
                raise ValueError(f"{where}: {e['msg'].removeprefix('Value error, ')}") from None
        return self
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
# --- disentangle: the disentanglement evaluation (vaebench.evaluate.disentangle) ------
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


# --- samplequality: generated images in a classifier's feature space -------------------

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


# Sections of params.yaml that a profile may overlay, with their schema.
# An evaluation stage adds its own section here.
SECTIONS: dict[str, type[Strict]] = {"train": TrainConfig, "loglik": LoglikConfig,
                                     "robustness": RobustnessConfig,
                                     "disentangle": DisentangleConfig,
                                     "samplequality": SampleQualityConfig}


class EvaluateLists(Strict):
    """``evaluate:`` -- which models each evaluation stage runs for (drives ``foreach``)."""

    loglik: list[str] = []
    disentangle: list[str] = []
    robustness: list[str] = []
    samplequality: list[str] = []


class Config(Strict):
    """The validated, profile-resolved parameters of one pipeline run."""

    profile: str
    device: Device = "auto"
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"   # devices.resolve_threads
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = [0]
    datasets: dict[str, Any]      # name -> dataset config (validated by the data registry)
    models: dict[str, Any]        # name -> model config (validated by the model registry)
    evaluate: EvaluateLists = EvaluateLists()
    sections: dict[str, Any]      # name -> section config (SECTIONS)

    def section(self, name: str) -> Any:
        return self.sections[name]

    @property
    def train(self) -> TrainConfig:
        return self.sections["train"]

    def model_train(self, model: str) -> TrainConfig:
        """The ``train`` section with the model's own ``train:`` overrides applied."""
        overrides = self.models[model].train
        if not overrides:
            return self.train
        merged = _merge(self.train.model_dump(), overrides)
        return validate(TrainConfig, merged, f"models.{model}.train")

    def stage_device(self, section: str) -> str:
        """``<section>.device`` if set, else the top-level ``device``."""
        own = getattr(self.sections.get(section), "device", None)
        return own or self.device


_TOP_KEYS = {"profile", "device", "threads", "seeds", "profiles", "datasets", "models", "evaluate",
             *SECTIONS}


def _merge(base: Any, overlay: Any) -> Any:
    """Deep-merge ``overlay`` onto ``base`` (dicts merge, everything else replaces)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = copy.deepcopy(base)
        for key, value in overlay.items():
            out[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(overlay)


def _resolve(raw: dict, profile: str, active: bool = True) -> Config:
    overlay = raw["profiles"][profile] or {}
    unknown = set(overlay) - {"datasets", *SECTIONS}
    if unknown:
        raise ConfigError(
            f"profiles.{profile} has unknown key(s) {sorted(unknown)}; "
            f"a profile may set: datasets, {', '.join(SECTIONS)}")
    where = f"(profile {profile})"
    sections = {}
    for name, schema in SECTIONS.items():
        merged = _merge(raw.get(name) or {}, overlay.get(name) or {})
        sections[name] = validate(schema, merged, f"{name} {where}")

    # Imported here: the registries import torch, config validation of the
    # top-level keys above should not need it.
    from vaebench.data import validate_dataset_config
    from vaebench.models import validate_model_config

    datasets = {}
    for name, block in (raw.get("datasets") or {}).items():
        merged = _merge(block or {}, (overlay.get("datasets") or {}).get(name) or {})
        datasets[name] = validate_dataset_config(name, merged, f"datasets.{name} {where}")
    for name in (overlay.get("datasets") or {}):
        if name not in datasets:
            raise ConfigError(f"profiles.{profile}.datasets.{name}: no dataset {name!r} "
                              f"in datasets; known: {sorted(datasets)}")

    models = {}
    for name, block in (raw.get("models") or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"models.{name}: model names may use letters, digits and _ only")
        cfg = validate_model_config(name, block)
        if cfg.dataset not in datasets:
            raise ConfigError(f"models.{name}.dataset: {cfg.dataset!r} is not in datasets; "
                              f"known: {sorted(datasets)}")
        _check_bernoulli_data(name, cfg)
        _check_buildable(name, cfg, datasets[cfg.dataset], where)
        models[name] = cfg

    cfg = validate(Config, {
        "profile": profile, "device": raw.get("device", "auto"),
        "threads": raw.get("threads", "auto"),
        "seeds": raw.get("seeds", [0]), "datasets": datasets, "models": models,
        "evaluate": raw.get("evaluate") or {}, "sections": sections,
    }, "params")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds: values must be distinct (got {cfg.seeds})")
    for name in sections["loglik"].datasets:
        if name not in datasets:
            raise ConfigError(f"loglik.datasets.{name} (profile {profile}): no dataset {name!r}; "
                              f"known: {sorted(datasets)}")
    for name, m in models.items():
        if isinstance(cfg.train.epochs, dict) and not m.train.get("epochs"):
            cfg.train.epochs_for(m.dataset)  # raises if the profile forgot a dataset
        cfg.model_train(name)                # validates the model's train overrides
    for stage, names in cfg.evaluate.model_dump().items():
        for name in names:
            if name not in models:
                raise ConfigError(f"evaluate.{stage}: {name!r} is not in models; "
                                  f"known: {sorted(models)}")
            check_applicable(stage, name, models[name])
    _check_disentangle(cfg, profile)
    _check_samplequality(cfg, overlay, profile)
    if active:
        _warn_cost(cfg, profile)
    return cfg


def _check_bernoulli_data(name: str, mcfg: Any) -> None:
    """A Bernoulli decoder has no density on grey values: on an intensity dataset it
    needs ``binarize: true`` (dynamic binarisation), else a Gaussian likelihood."""
    from vaebench.data import get_dataset
    if (getattr(mcfg, "likelihood", None) == "bernoulli" and not getattr(mcfg, "binarize", True)
            and not get_dataset(mcfg.dataset).BINARY):
        raise ConfigError(
            f"models.{name}: likelihood 'bernoulli' with binarize: false on dataset "
            f"{mcfg.dataset!r}, whose pixels are intensities, not 0/1; set binarize: true, or "
            f"choose likelihood gaussian, gaussian_isotropic or gaussian_learned")


def _check_buildable(name: str, mcfg: Any, dcfg: Any, where: str) -> None:
    """Build the model for the dataset's image shape: a backbone that cannot take that
    size, or a family's own shape rule (TD-VAE's jumps within the sequence), fails here
    rather than in training.

    On the CPU (every model of every profile: ~0.25 CPU s, < 1M parameters each), not
    the meta device: meta tensors run some factory functions (``torch.eye``) through
    ``torch._refs``, whose first call imports ``torch._dynamo`` (~1.6 CPU s per stage).
    The initialisation's draws leave the global generator as it was."""
    import torch

    from vaebench.data import get_dataset
    from vaebench.models import build_model
    shape = get_dataset(mcfg.dataset).image_shape(dcfg)
    try:
        with torch.random.fork_rng(devices=[]):
            build_model(mcfg, shape)
    except (ValueError, RuntimeError) as err:  # ConfigError is a ValueError
        raise ConfigError(f"models.{name} {where}: cannot be built for dataset "
                          f"{mcfg.dataset!r} with images of shape {shape}: {err}") from None


# Above this many decoder evaluations per model and seed, ``check`` warns with the estimate.
COST_WARN_DECODER_ROWS = 10**9


def _warn_cost(cfg: Config, profile: str) -> None:
    """Warn about an enormous log-likelihood estimate: K_max * n_test decoder rows per
    model and seed (one warning per dataset, naming its models)."""
    lcfg = cfg.section("loglik")
    by_dataset: dict[str, list[str]] = {}
    for name in cfg.evaluate.loglik:
        by_dataset.setdefault(cfg.models[name].dataset, []).append(name)
    for dataset, names in by_dataset.items():
        d = lcfg.for_dataset(dataset)
        n_test = d.n_test or getattr(cfg.datasets[dataset], "n_test", None) or 10_000
        rows = max(d.ks) * n_test
        if rows > COST_WARN_DECODER_ROWS:
            warn(f"loglik.ks (profile {profile}): K = {max(d.ks):,} on {n_test:,} {dataset} "
                 f"test images is ~{rows:.2g} decoder evaluations per model and seed "
                 f"(~{rows / 1e6 / 3600:,.0f} hours at 1e6 a second), for {len(names)} "
                 f"model(s): {', '.join(names)}")


def warn(message: str) -> None:
    """A problem worth knowing that does not stop the run (stderr, once per call)."""
    print(f"vaebench: warning: {message}", file=sys.stderr)


# What an evaluation stage needs of a model's class: stage -> (test, what is missing).
EVALUATE_REQUIRES: dict[str, tuple[Any, str]] = {
    "loglik": (lambda cls: cls.probabilistic,
               "is not probabilistic (it needs a decoder likelihood, a prior and a q(z|x) "
               "with a density to estimate log p(x))"),
    "robustness": (lambda cls: cls.image_inputs and cls.amortised,
                   "has no amortised encoder of single images (per-image corruptions, the "
                   "encoder Jacobian and gradient attacks need one)"),
    "samplequality": (lambda cls: _generates_images(cls),
                      "generates no single images (it needs image inputs and a prior() to "
                      "decode draws of, or its own sample(): VAEs, autoencoders with the "
                      "ex-post density, VQ models with a code prior)"),
    "disentangle": (lambda cls: cls.image_inputs,
                    "does not encode single images (the metrics encode rendered images "
                    "of chosen factors)"),
}


def _generates_images(cls) -> bool:
    """Can the class's ``sample(n)`` return images (docs/model_contract.md): single-image
    inputs, and a ``prior()`` or a ``sample()`` of its own beside the base class's (whose
    ``prior()`` is None, so its ``sample()`` returns None)."""
    from vaebench.models.base import Model
    return cls.image_inputs and (cls.prior is not Model.prior or cls.sample is not Model.sample)


def check_applicable(stage: str, name: str, mcfg: Any) -> None:
    """Raise ConfigError if ``evaluate.<stage>`` lists a model its stage cannot evaluate."""
    if stage not in EVALUATE_REQUIRES:
        return
    from vaebench.models import MODELS
    test, missing = EVALUATE_REQUIRES[stage]
    if not test(MODELS[mcfg.family]):
        able = sorted(f for f, c in MODELS.items() if test(c))
        raise ConfigError(f"evaluate.{stage}: model {name!r} (family {mcfg.family!r}) {missing}; "
                          f"families it applies to: {', '.join(able)}")


def _check_disentangle(cfg: Config, profile: str) -> None:
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


def _check_samplequality(cfg: Config, overlay: dict, profile: str) -> None:
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML loader that rejects a key written twice (plain YAML keeps the last silently),
    and reads ``1e-3`` / ``1e11`` as numbers, as YAML 1.2 (and DVC) do -- PyYAML's
    YAML 1.1 rules want a dot and would hand the schema the string '1e-3'."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"params.yaml line {key_node.start_mark.line + 1}: "
                                  f"key {key!r} appears twice in the same mapping")
            seen.add(key)
        return super().construct_mapping(node, deep)


_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_config(path: str | Path = "params.yaml", profile: str | None = None) -> Config:
    """Read, validate and resolve ``params.yaml`` for ``profile`` (default: its ``profile``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"params.yaml: unknown top-level key(s) {sorted(unknown)}; "
                          f"valid: {sorted(_TOP_KEYS)}")
    missing = [name for name in SECTIONS if name not in raw]
    if missing:  # the stages declare these as DVC params, so they must be written out
        raise ConfigError(f"params.yaml: section(s) {missing} are missing; every stage "
                          f"section must be present (its defaults: see vaebench.config)")
    profiles = raw.get("profiles") or {}
    if not profiles:
        raise ConfigError("params.yaml: 'profiles' is missing or empty")
    profile = profile or raw.get("profile")
    if profile not in profiles:
        raise ConfigError(f"profile: {profile!r} is not defined; valid: {sorted(profiles)}")
    for other in profiles:  # catch mistakes in every profile, not only the active one
        if other != profile:
            _resolve(raw, other, active=False)
    return _resolve(raw, profile)
