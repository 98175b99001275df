"""Loading and validating ``params.yaml``: the sections composed into one schema.

Every stage starts by calling :func:`load_config`, so an unknown key, an unknown
model family, a wrong type or an out-of-range value is reported, naming the
key, before any work is done. The active profile's overlay
(``profiles.<profile>``) is merged onto the base sections first; every profile
is validated, not only the active one, so a typo in ``paper`` is caught while
running ``quick``.

This module only composes: each stage's section (its schema, its checks against the
rest of the parameters, and which models it evaluates) lives in its own module under
:mod:`vaebench.sections`; model configs live beside their model class and dataset
configs beside their dataset (see the two registries). Their common base ``Strict``,
``ConfigError`` and ``validate`` live in the leaf :mod:`vaebench.schema` (importable
from here as well), so the registries never import this module.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, create_model

from vaebench.schema import ConfigError, Strict, validate
from vaebench.sections import Device, Section
from vaebench.sections import disentangle, loglik, robustness, samplequality, train
from vaebench.sections.train import TrainConfig

# Every stage section of params.yaml; a new stage adds its module's SECTION here.
ALL_SECTIONS: tuple[Section, ...] = (train.SECTION, loglik.SECTION, robustness.SECTION,
                                     disentangle.SECTION, samplequality.SECTION)
# Sections a profile may overlay, with their schema.
SECTIONS: dict[str, type[Strict]] = {s.name: s.schema for s in ALL_SECTIONS}
# What each per-model evaluation needs of a model's class: stage -> (test, what is missing).
EVALUATE_REQUIRES = {s.name: s.applies for s in ALL_SECTIONS if s.applies is not None}

# ``evaluate:`` -- which models each evaluation stage runs for (drives dvc.yaml's foreach):
# one list per section with an applicability rule, so every listed model is checked.
EvaluateLists = create_model(
    "EvaluateLists", __base__=Strict,
    **{name: (list[str], []) for name in EVALUATE_REQUIRES})


class Params(Strict):
    """The validated, profile-resolved parameters of one pipeline run (``params.yaml``)."""

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


def _resolve(raw: dict, profile: str, active: bool = True) -> Params:
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
    datasets = _datasets(raw, overlay, profile)
    models = _models(raw, datasets, where)
    cfg = validate(Params, {
        "profile": profile, "device": raw.get("device", "auto"),
        "threads": raw.get("threads", "auto"),
        "seeds": raw.get("seeds", [0]), "datasets": datasets, "models": models,
        "evaluate": raw.get("evaluate") or {}, "sections": sections,
    }, "params")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds: values must be distinct (got {cfg.seeds})")
    for stage, names in cfg.evaluate.model_dump().items():
        for name in names:
            if name not in models:
                raise ConfigError(f"evaluate.{stage}: {name!r} is not in models; "
                                  f"known: {sorted(models)}")
            check_applicable(stage, name, models[name])
    for section in ALL_SECTIONS:
        if section.check is not None:
            section.check(cfg, overlay, profile)
    for section in ALL_SECTIONS:  # after every check: no warning before an error
        if active and section.warn is not None:
            section.warn(cfg, profile)
    return cfg


def _datasets(raw: dict, overlay: dict, profile: str) -> dict[str, Any]:
    """``datasets:`` with the profile's overrides, each validated by its dataset module."""
    # Imported here: the registries import torch, config validation of the
    # top-level keys above should not need it.
    from vaebench.data import validate_dataset_config
    datasets = {}
    for name, block in (raw.get("datasets") or {}).items():
        merged = _merge(block or {}, (overlay.get("datasets") or {}).get(name) or {})
        datasets[name] = validate_dataset_config(name, merged,
                                                 f"datasets.{name} (profile {profile})")
    for name in (overlay.get("datasets") or {}):
        if name not in datasets:
            raise ConfigError(f"profiles.{profile}.datasets.{name}: no dataset {name!r} "
                              f"in datasets; known: {sorted(datasets)}")
    return datasets


def _models(raw: dict, datasets: dict[str, Any], where: str) -> dict[str, Any]:
    """``models:``, each validated by its family and built for its dataset's images."""
    from vaebench.models import validate_model_config
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
    return models


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


def check_applicable(stage: str, name: str, mcfg: Any) -> None:
    """Raise ConfigError if ``evaluate.<stage>`` lists a model its stage cannot evaluate
    (the rule is the stage section's ``applies``)."""
    if stage not in EVALUATE_REQUIRES:
        return
    from vaebench.models import MODELS
    test, missing = EVALUATE_REQUIRES[stage]
    if not test(MODELS[mcfg.family]):
        able = sorted(f for f, c in MODELS.items() if test(c))
        raise ConfigError(f"evaluate.{stage}: model {name!r} (family {mcfg.family!r}) {missing}; "
                          f"families it applies to: {', '.join(able)}")


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


def load_config(path: str | Path = "params.yaml", profile: str | None = None) -> Params:
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
                          f"section must be present (its defaults: see vaebench.sections)")
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
