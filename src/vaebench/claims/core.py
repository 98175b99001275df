"""What a claim is, how its statistic gets an interval, and how a verdict is reached.

A :class:`Claim` is declared once (see the group modules): an id, a statement, its
source, a description of the statistic, a ``measure`` function and a ``test``. The
measure function reads the stages' metrics (a :class:`Context`) and returns one
:class:`Comparison` per set of models it compares, each holding the statistic per
seed (an :class:`Estimate`, with a standard error over test points where the stages
record one). :func:`evaluate` turns that into an interval and a verdict:

* two or more seeds shared by every compared model: the 95% Student-t interval of
  the mean over seeds (training and evaluation noise together);
* one seed with a standard error: value ± 1.96 SE;
* one seed without one: no interval, and the claim is ``not measured`` (it needs
  seeds); a claim is never decided on a number whose noise is unknown.

Tests (all oriented so that a larger statistic supports the claim):

* :class:`AtLeast` -- an invariant or "at least as good": ``not reproduced`` only when
  the whole interval lies below the threshold;
* :class:`Above` -- "better than": ``reproduced`` when the whole interval lies above;
* :class:`Within` -- "equal": the interval, widened by a numerical tolerance, holds 0.

``resolution`` (AtLeast, Above): the smallest effect the claim is about (the
published difference where there is one). An interval wider than that (half-width >
resolution) cannot decide the claim, so short of a clear failure it is ``not
measured``, with the reason -- never a pass by default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from scipy import stats

from vaebench.config import Params

REPRODUCED, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "not reproduced", "not measured"
SEEDS_HINT = "run with two or more seeds (params.yaml `seeds`, e.g. `dvc exp run -S 'seeds=[0,1,2]'`)"


class NotMeasured(Exception):
    """Raised by a measure function when the claim has nothing to compare."""


@dataclass(frozen=True)
class Source:
    cite: str             # authors year, "title", arXiv id
    where: str = ""       # table / figure / section
    published: str = ""   # the published number(s), where there are some

    def text(self) -> str:
        parts = [self.cite, self.where, f"published: {self.published}" if self.published else ""]
        return "; ".join(p for p in parts if p)


@dataclass
class Estimate:
    """One seed's statistic and, when the stage records one, its SE over test points."""
    value: float
    se: float | None = None
    how: str = ""         # how the SE was obtained


@dataclass
class Comparison:
    label: str                                      # e.g. "mnist_iwae − mnist_vae"
    models: tuple[str, ...]
    per_seed: dict[str, Estimate] = field(default_factory=dict)
    missing: str | None = None                      # why it could not be measured
    remedy: str | None = None                       # what would resolve an underpowered test


@dataclass(frozen=True)
class AtLeast:
    threshold: float = 0.0
    resolution: float | None = None

    def decide(self, value: float, half: float) -> tuple[str, float]:
        if value + half < self.threshold:
            return NOT_REPRODUCED, value + half - self.threshold
        if self.resolution is not None and half > self.resolution:
            return NOT_MEASURED, math.nan
        return REPRODUCED, value + half - self.threshold

    def describe(self) -> str:
        return f"≥ {self.threshold:g} (fails only if the whole interval is below)"


@dataclass(frozen=True)
class Above:
    threshold: float = 0.0
    resolution: float | None = None

    def decide(self, value: float, half: float) -> tuple[str, float]:
        if value - half > self.threshold:
            return REPRODUCED, value - half - self.threshold
        if self.resolution is not None and half > self.resolution:
            return NOT_MEASURED, math.nan
        return NOT_REPRODUCED, value - half - self.threshold

    def describe(self) -> str:
        return f"> {self.threshold:g} (the whole interval above)"


@dataclass(frozen=True)
class Within:
    tolerance: float = 0.0   # numerical tolerance added to the interval (float rounding)

    def decide(self, value: float, half: float) -> tuple[str, float]:
        margin = half + self.tolerance - abs(value)
        return (REPRODUCED if margin >= 0 else NOT_REPRODUCED), margin

    def describe(self) -> str:
        return f"= 0 (the interval widened by {self.tolerance:g} holds 0)"


Test = AtLeast | Above | Within


@dataclass
class Context:
    """What the measure functions read: the resolved params, ``{stage: {model: json}}``,
    the plots folder, and the other profiles of params.yaml (to say which decides)."""
    cfg: Params
    metrics: dict[str, dict[str, dict]]
    plots_dir: Path | None = None
    alternatives: dict[str, Params] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: Source
    statistic: str                                   # what is measured, units
    measure: Callable[[Context], list[Comparison]]
    test: Test
    # what this project found about the claim where a profile does not reproduce it (the
    # cause, the evidence, where it is written up); shown beside the verdict, never
    # changing it
    finding: str = ""


# --- reading the metrics -------------------------------------------------------------------

def get(d: Any, path: str) -> Any:
    """``d["a"]["b"]`` for path ``"a.b"``; None where any key is missing."""
    for key in path.split("."):
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def absent(ctx: Context, stage: str, model: str) -> str | None:
    """Why ``<stage>/<model>.json`` is not among the metrics (None if it is)."""
    if model in ctx.metrics.get(stage, {}):
        return None
    listed = getattr(ctx.cfg.evaluate, stage, None)
    if listed is not None and model not in listed:
        return f"{model} is not in evaluate.{stage} of params.yaml"
    return f"no metrics file {stage}/{model}.json (the {stage} stage has not run for it)"


def compare(ctx: Context, stage: str, models: tuple[str, ...], label: str,
            statistic: Callable[..., Estimate], extra_stage: str | None = None) -> Comparison:
    """``statistic(seed_dict_of_models[0], ...)`` for every seed all ``models`` share in
    ``stage``. The statistic raises KeyError(reason) when a key it needs is missing."""
    for m in models:
        why = absent(ctx, stage, m)
        if why:
            return Comparison(label, models, missing=why)
    files = [ctx.metrics[stage][m].get("seeds") or {} for m in models]
    seeds = sorted(set.intersection(*(set(f) for f in files)), key=int)
    if not seeds:
        return Comparison(label, models, missing=f"{' and '.join(models)} share no seed")
    try:
        per_seed = {s: statistic(*(f[s] for f in files)) for s in seeds}
    except KeyError as err:
        return Comparison(label, models, missing=str(err.args[0]))
    return Comparison(label, models, per_seed)


def need(d: dict, path: str, model: str) -> Any:
    """``get(d, path)`` or a KeyError naming what the metrics file lacks."""
    value = get(d, path)
    if value is None:
        raise KeyError(f"{model}: `{path}` is not in its metrics file")
    return value


# --- models by family and role -------------------------------------------------------------

# The options that make a variant of its family; the family's reference model has all of
# them at their defaults (a standard prior, a Bernoulli likelihood, reparameterised joint
# training...). Architecture and budget keys do not count.
ROLE_FIELDS = ("prior", "likelihood", "gradient", "mc_samples", "baseline", "optimisation",
               "code_activation")


def variant_options(mcfg: Any) -> dict[str, Any]:
    """The role options of a model config that differ from its class defaults."""
    fields = type(mcfg).model_fields
    return {f: getattr(mcfg, f) for f in ROLE_FIELDS
            if f in fields and getattr(mcfg, f) != fields[f].default}


def family(cfg: Params, *families: str, dataset: str | None = None) -> list[str]:
    return [n for n, m in cfg.models.items()
            if m.family in families and (dataset is None or m.dataset == dataset)]


def reference(cfg: Params, fam: str, like: str) -> str | None:
    """The model of family ``fam`` on the dataset of ``like`` with every role option at
    its default; among several, the one sharing ``like``'s backbone and latent size."""
    target = cfg.models[like]
    found = [n for n in family(cfg, fam, dataset=target.dataset)
             if n != like and not variant_options(cfg.models[n])]
    same = [n for n in found if all(getattr(cfg.models[n], k, None) == getattr(target, k, None)
                                    for k in ("backbone", "latent_dim"))]
    return (same or found or [None])[0]


def no_reference(model: str, fam: str, cfg: Params) -> Comparison:
    return Comparison(f"{model} vs ?", (model,),
                      missing=f"no plain `{fam}` model on {cfg.models[model].dataset} in "
                              f"params.yaml models to compare {model} with")


# --- intervals and verdicts ----------------------------------------------------------------

def interval(per_seed: dict[str, Estimate]) -> tuple[float, float | None, str]:
    """(value, 95% half-width or None, how) -- see the module docstring."""
    values = [e.value for e in per_seed.values()]
    n = len(values)
    mean = sum(values) / n
    if n >= 2:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        return mean, float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n), \
            f"95% t-interval over {n} seeds"
    (e,) = per_seed.values()
    if e.se is not None and math.isfinite(e.se):
        return e.value, 1.96 * e.se, f"±1.96 SE, {e.how}" if e.how else "±1.96 SE"
    return e.value, None, "one seed, no standard error recorded"


def paired_relative_gain(a: list[float], b: list[float]) -> Estimate:
    """1 − mean(a) / mean(b) on paired points (a_i, b_i), e.g. two models' errors on the
    same test inputs, with its delta-method SE. Linearising R = ā / b̄ about the true
    ratio, R̂ − R ≈ mean(a_i − R b_i) / b̄, so Var(R̂) ≈ Var(a_i − R b_i) / (n b̄²);
    1 − R̂ has the same SE. Pairing removes what the points share (hard inputs are hard
    for both models) from the noise."""
    n = len(a)
    if n != len(b) or n < 2:
        raise ValueError(f"paired points need two equal lengths >= 2, got {n} and {len(b)}")
    mean_a, mean_b = sum(a) / n, sum(b) / n
    ratio = mean_a / mean_b
    resid = [x - ratio * y for x, y in zip(a, b)]        # mean exactly 0 at R = ā / b̄
    var = sum(d * d for d in resid) / (n - 1)
    return Estimate(1 - ratio, math.sqrt(var / n) / abs(mean_b),
                    f"delta method, paired over {n} test points")


def judge(c: Comparison, test: Test) -> dict:
    """One comparison's row: value, interval, verdict, reason."""
    row = {"label": c.label, "models": list(c.models)}
    if c.missing:
        return {**row, "verdict": NOT_MEASURED, "reason": c.missing}
    value, half, how = interval(c.per_seed)
    row.update(value=value, half_width=half, method=how, seeds=sorted(c.per_seed, key=int))
    if half is None:
        return {**row, "verdict": NOT_MEASURED,
                "reason": f"one seed and no standard error for this statistic: {SEEDS_HINT}"}
    verdict, margin = test.decide(value, half)
    row.update(verdict=verdict, margin=margin)
    if verdict == NOT_MEASURED:
        row["reason"] = (f"the 95% interval (±{half:.3g}) is wider than the effect the claim is "
                         f"about ({test.resolution:g}); "
                         + (c.remedy or SEEDS_HINT))
    return row


def evaluate(claim: Claim, ctx: Context) -> dict:
    """The claim's entry of claims.json: every comparison, and the claim's verdict (any
    comparison not reproduced -> not reproduced; else any not measured -> not measured)."""
    head = {"id": claim.id, "statement": claim.statement, "source": claim.source.text(),
            "statistic": claim.statistic, "test": claim.test.describe(),
            **({"finding": claim.finding} if claim.finding else {})}
    try:
        rows = [judge(c, claim.test) for c in claim.measure(ctx)]
    except NotMeasured as err:
        return {**head, "models": [], "verdict": NOT_MEASURED, "reason": str(err),
                "comparisons": []}
    verdicts = [r["verdict"] for r in rows]
    verdict = (NOT_REPRODUCED if NOT_REPRODUCED in verdicts
               else NOT_MEASURED if NOT_MEASURED in verdicts or not rows else REPRODUCED)
    # the comparison shown: the first of the claim's verdict with the smallest margin
    same = [r for r in rows if r["verdict"] == verdict]
    shown = min(same, key=lambda r: r.get("margin", math.inf)
                if math.isfinite(r.get("margin", math.inf)) else math.inf) if same else None
    models = list(dict.fromkeys(m for r in rows for m in r["models"]))
    out = {**head, "models": models, "verdict": verdict,
           "counts": {v: verdicts.count(v) for v in (REPRODUCED, NOT_REPRODUCED, NOT_MEASURED)},
           "shown": shown["label"] if shown else None, "comparisons": rows}
    if shown is not None:
        out.update({k: shown[k] for k in ("value", "half_width", "method") if k in shown})
        if shown.get("reason"):
            out["reason"] = shown["reason"]
    return out
