"""``robustness@<model>``: corruptions, encoder sensitivity and adversarial attacks
(the corruption processes of denoising autoencoders, Vincent et al. 2010; the
encoder Jacobian norm of contractive autoencoders, Rifai et al. 2011; the
protocol is written out in docs/protocols.md).

Everything goes through the common model interface (``encode``, ``represent``,
``decode``, ``prior``, ``probabilistic``), so every family is measured the same
way; what differs is decided by the objects, not by family names.

**Corruptions.** For each process of :data:`vaebench.corruptions.CORRUPTIONS`
and each level (0 first, so every curve starts at the clean point), on a seeded
random subset of ``n_test`` test inputs x (``prepare`` already stores test rows in
a seeded random order; drawing from ``robustness.seed`` keeps the subset this
stage's own) with corrupted copies x~ (the
same random draws at every level of one process, so the curves are smooth in the
level). The subset and the draws are seeded from ``robustness.seed`` alone and
depend only on the test set's size, the inputs' shape and the device type: every
model of a dataset (on the stage's device) sees the same points in the same order and the same corruptions, so two models'
per-point errors pair up (``recon_err_points``, below):

* ``recon_err``  -- ||x^(x~) - x||^2 summed over pixels, against the CLEAN input,
  x^ = mean of p(x | z = represent(x~)). Squared error, not cross-entropy, so it
  is defined for every decoder likelihood and matches the output attack. Each
  seed also records the per-point errors, ``recon_err_points`` = {"clean": [...],
  <corruption>: {<level>: [...]}} (positive levels; level 0 is the clean row), in
  the subset's order, to 5 significant digits, and ``recon_err_clean_stderr``,
  the standard error of the clean mean: comparisons of two models get a paired
  standard error from one seed;
* ``code_dist``  -- ||r(x~) - r(x)|| / ||r(x)||, r = represent (every model;
  scale-free, so autoencoders with differently scaled codes compare);
* ``kl``         -- KL(q(z|x~) || q(z|x)) in nats, where torch.distributions has
  that KL registered for the encoder's distribution (Gaussian encoders);
* ``delta_elbo`` -- for probabilistic models with a prior: the change of the
  bound on the CLEAN log p(x) when the corrupted input's posterior is used,
  ELBO(x; q(.|x~)) - ELBO(x; q(.|x)), with
  ELBO(x; q) = E_q[log p(x|z)] - KL(q || p(z)) (any q gives a valid bound, so
  the change is exactly how much the corruption loosens it; KL in closed form
  where registered, else Monte Carlo log p(z) - log q(z)). Both bounds use the
  same noise draws, so the level-0 change is exactly 0;
* ``probe_acc[_<factor>]`` -- where the dataset has factors or labels: accuracy
  of a linear probe (standardised codes, logistic regression, one per factor)
  fitted on clean TRAIN codes and applied to the corrupted test codes.

**Encoder sensitivity.** ``jacobian_frob``: mean of ||J_r(x)||_F over the first
``jacobian.n`` points of that random subset, exact (:mod:`vaebench.models.jacobian`);
also ``jacobian_frob_sq``, the mean of the square (the contractive penalty).

**Attacks.** :mod:`vaebench.evaluate.attacks` -- latent and output attacks in
the L2 and L-infinity balls for each eps of the list (0 first), on the first
``attack.n`` points of the random subset.

The Jacobian and the attacks need gradients with respect to the input; for a
model whose ``represent`` has none (inference that returns detached codes, e.g.
per-datapoint optimisation) they are skipped and ``encoder_differentiable`` is
false in the JSON.

**Summaries.** Every curve y(level) is summarised by its normalised area
AUC = (1 / (l_max - l_0)) * trapezoid integral of y over the levels, i.e. the
mean height of the curve over the level range, in the units of y (for an attack
curve the levels are the eps values). Lower is more robust for every metric but
the probe accuracy (and delta_elbo, which is <= 0 when corruption hurts).
"""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import auc as trapezoid_auc
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.distributions import Distribution, kl_divergence

from vaebench import io
from vaebench.config import Params
from vaebench.corruptions import CORRUPTIONS
from vaebench.evaluate.attacks import (code_distance, has_kl, input_differentiable,
                                       latent_objective, output_objective, pgd)
from vaebench.models.capabilities import Probabilistic
from vaebench.models.elbo import elbo_terms
from vaebench.models.jacobian import jacobian_frobenius
from vaebench.runs import stage_metrics, timestamp
from vaebench.sections.robustness import RobustnessConfig
from vaebench.stage import Clock, StageContext, checked_model, seeded_torch, stream_seed


def normalised_auc(levels, values) -> float:
    """Trapezoid area under values(levels) divided by the level range (mean height)."""
    levels, values = np.asarray(levels, float), np.asarray(values, float)
    if len(levels) == 1:
        return float(values[0])
    return float(trapezoid_auc(levels, values) / (levels[-1] - levels[0]))


def is_variational(model) -> bool:
    """Probabilistic model (q with a density, a prior): its ELBO can be evaluated."""
    return isinstance(model, Probabilistic)


def elbo(model, x: torch.Tensor, q: Distribution, n_samples: int, seed: int) -> torch.Tensor:
    """ELBO(x; q) = E_q[log p(x|z)] - KL(q || p(z)) per example, (B,); seeded draws."""
    with seeded_torch(x.device, seed):
        z = q.rsample((n_samples,))                              # (S, B, D)
    return elbo_terms(lambda z: model.decode(z).log_prob(x), q, model.prior(), z).elbo


# --- linear probes ------------------------------------------------------------------

def fit_probes(codes: np.ndarray, factors: np.ndarray, names: list[str], C: float,
               max_iter: int) -> dict[str, Pipeline]:
    """One standardise + logistic-regression probe per factor with >= 2 classes."""
    probes = {}
    for j, name in enumerate(names):
        if len(np.unique(factors[:, j])) < 2:
            continue                                 # a constant factor cannot be probed
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
        probes[name] = clf.fit(codes, factors[:, j])
    return probes


def probe_accuracy(probes: dict[str, Pipeline], codes: np.ndarray, factors: np.ndarray,
                   names: list[str]) -> dict[str, float]:
    """{'probe_acc_<factor>': accuracy, 'probe_acc': mean over probed factors}."""
    if not probes:
        return {}
    acc = {f"probe_acc_{n}": float(p.score(codes, factors[:, names.index(n)]))
           for n, p in probes.items()}
    return {"probe_acc": float(np.mean(list(acc.values()))), **acc}


def train_codes(model, data, n: int, binarize: bool, seed: int, batch_size: int):
    """Codes and factors of a seeded random subset of the training set (numpy)."""
    gen = torch.Generator(device=data.device).manual_seed(stream_seed(seed, "probe"))
    idx = torch.randperm(len(data.x_train), generator=gen, device=data.device)[:n]
    with torch.no_grad():
        codes = torch.cat([model.represent(data.train_batch(i, binarize, gen))
                           for i in idx.split(batch_size)])
    return codes.cpu().numpy(), data.factors_train[idx].cpu().numpy()


# --- corruptions ----------------------------------------------------------------------

@dataclass
class Reference:
    """What the clean inputs x of one batch give, computed once."""

    x: torch.Tensor                     # (B, C, H, W)
    r: torch.Tensor                     # (B, D) represent(x)
    q: Distribution                     # q(z|x)
    recon: torch.Tensor                 # (B, C, H, W) mean of p(x | z = r)
    elbo: torch.Tensor | None           # (B,) ELBO(x; q(.|x)), variational models only
    seed: int                           # of the ELBO's noise draws (shared with x~)


@torch.no_grad()
def reference(model, x: torch.Tensor, seed: int, elbo_samples: int = 1) -> Reference:
    q, r = model.encode(x), model.represent(x)
    return Reference(x, r, q, model.decode(r).mean,
                     elbo(model, x, q, elbo_samples, seed) if is_variational(model) else None,
                     seed)


@torch.no_grad()
def displacement(model, ref: Reference, x_tilde: torch.Tensor, elbo_samples: int = 1
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-example metrics of the corrupted inputs x~ against the clean batch, and r(x~).

    ({'recon_err', 'code_dist'[, 'kl'][, 'delta_elbo']: (B,)}, (B, D)).
    """
    r = model.represent(x_tilde)                                          # (B, D)
    out = {"recon_err": (model.decode(r).mean - ref.x).pow(2).flatten(1).sum(1),
           "code_dist": code_distance(r, ref.r)}
    kl, variational = has_kl(ref.q), ref.elbo is not None
    if kl or variational:
        q = model.encode(x_tilde)
        if kl:
            out["kl"] = kl_divergence(q, ref.q)
        if variational:
            out["delta_elbo"] = elbo(model, ref.x, q, elbo_samples, ref.seed) - ref.elbo
    return out, r


@torch.no_grad()
def corruption_curves(model, x: torch.Tensor, corruptions: dict[str, list[float]], *,
                      seed: int, batch_size: int, elbo_samples: int = 1,
                      probes: dict[str, Pipeline] | None = None,
                      factors: np.ndarray | None = None, factor_names: list[str] = ()
                      ) -> tuple[dict[tuple[str, str], list[float]], dict[str, float],
                                 dict[str, str], dict]:
    """Metric curves over the corruption levels, the clean metrics, skipped processes,
    and the per-point reconstruction errors.

    Returns ({(corruption, metric): [mean over x per level]}, {<metric>_clean: value},
    {corruption: why it was skipped}, {"clean": [recon_err per x], corruption: {level:
    [recon_err per x]}} (positive levels of the processes not skipped; x in order)).
    A level that leaves every input unchanged (level 0) takes the clean row: zero
    displacement, the clean reconstruction error and probe accuracy. A process whose
    corrupted inputs the model rejects with a ValueError (e.g. non-binary pixels where
    inference evaluates a Bernoulli likelihood of its input) is skipped and reported,
    not fatal.
    """
    refs = [reference(model, xb, seed + b, elbo_samples)
            for b, xb in enumerate(x.split(batch_size))]

    def summary(per_batch: list[dict[str, torch.Tensor]], codes: list[torch.Tensor]):
        row = {k: float(sum(float(p[k].sum()) for p in per_batch)) / len(x) for k in per_batch[0]}
        if probes:
            row.update(probe_accuracy(probes, torch.cat(codes).cpu().numpy(), factors,
                                      list(factor_names)))
        return row

    def clean(ref: Reference) -> dict[str, torch.Tensor]:
        """What :func:`displacement` gives for x~ = x, without recomputing it."""
        zeros = torch.zeros(len(ref.x), device=ref.x.device)
        out = {"recon_err": (ref.recon - ref.x).pow(2).flatten(1).sum(1), "code_dist": zeros}
        if has_kl(ref.q):
            out["kl"] = zeros
        if ref.elbo is not None:
            out["delta_elbo"] = zeros
        return out

    clean_per = [clean(ref) for ref in refs]
    clean_row = summary(clean_per, [ref.r for ref in refs])
    clean_metrics = {f"{k}_clean": v for k, v in clean_row.items()
                     if k == "recon_err" or k.startswith("probe_acc")}
    clean_points = recon_points(clean_per)
    if len(x) > 1:
        clean_metrics["recon_err_clean_stderr"] = float(np.std(clean_points, ddof=1)
                                                        / np.sqrt(len(x)))
    points: dict = {"clean": clean_points}
    if refs[0].elbo is not None:
        clean_metrics["elbo_clean"] = float(sum(float(r.elbo.sum()) for r in refs)) / len(x)

    curves: dict[tuple[str, str], list[float]] = {}
    skipped: dict[str, str] = {}
    for kind, levels in corruptions.items():
        corrupt, rows, level_points = CORRUPTIONS[kind], [], {}
        for level in levels:
            # the same draws at every level of one process: nested masks, scaled noise
            gen = torch.Generator(device=x.device).manual_seed(stream_seed(seed, kind))
            tilde = [corrupt(ref.x, level, gen) for ref in refs]
            if all(torch.equal(xt, ref.x) for xt, ref in zip(tilde, refs)):
                rows.append(clean_row)                            # level 0: nothing changed
                continue
            try:
                per, codes = zip(*(displacement(model, ref, xt, elbo_samples)
                                   for ref, xt in zip(refs, tilde)))
            except ValueError as err:   # x~ outside what the model accepts as input
                skipped[kind] = f"level {level}: {str(err).splitlines()[0][:300]}"
                print(f"warning: corruption {kind!r} skipped: the model rejects its inputs "
                      f"({skipped[kind]})", file=sys.stderr)
                break
            rows.append(summary(list(per), list(codes)))
            level_points[f"{level:g}"] = recon_points(per)
        if kind not in skipped:
            for row in rows:
                for metric, value in row.items():
                    curves.setdefault((kind, metric), []).append(value)
            points[kind] = level_points
    return curves, clean_metrics, skipped, points


def recon_points(per_batch) -> list[float]:
    """The per-point ``recon_err`` of a level, in order, to 5 significant digits (enough
    for a standard error; it keeps the metrics file small)."""
    errs = torch.cat([p["recon_err"] for p in per_batch]).cpu().tolist()
    return [float(f"{e:.5g}") for e in errs]


# --- attacks --------------------------------------------------------------------------

def attack_curves(model, x: torch.Tensor, eps: dict[str, list[float]], *, steps: int,
                  step_size: float, seed: int, batch_size: int
                  ) -> dict[tuple[str, str], list[float]]:
    """{('attack_<norm>', 'latent' | 'output'): [mean best objective per eps]}."""
    curves: dict[tuple[str, str], list[float]] = {}
    for norm, levels in eps.items():
        for target in ("latent", "output"):
            values = []
            for e in levels:
                gen = torch.Generator(device=x.device).manual_seed(
                    stream_seed(seed, "attack", norm, target))
                total = 0.0
                for xb in x.split(batch_size):
                    objective = (latent_objective(model, xb)[0] if target == "latent"
                                 else output_objective(model, xb))
                    total += float(pgd(objective, xb, e, norm, steps, step_size, gen).value.sum())
                values.append(total / len(x))
            curves[(f"attack_{norm}", target)] = values
    return curves


# --- one model -------------------------------------------------------------------------

def random_test_subset(data, n: int | None, binarize: bool, seed: int):
    """A seeded random subset of n test inputs, in random order, and their factors.

    ``prepare`` already stores test rows in a seeded random order; drawing again from
    ``robustness.seed`` makes the subset this stage's own, independent of that order.
    """
    gen = torch.Generator(device=data.device).manual_seed(stream_seed(seed, "test"))
    idx = torch.randperm(len(data.x_test), generator=gen, device=data.device)[:n]
    return data.test_inputs(binarize)[idx], data.factors_test[idx]


def evaluate_model(model, data, rcfg: RobustnessConfig) -> tuple[dict, dict]:
    """(flat metrics of one trained model, {(group, metric): (levels, values)})."""
    model.eval()
    binarize = model.cfg.binarize
    x, factors = random_test_subset(data, rcfg.n_test, binarize, rcfg.seed)  # (N, ...), (N, F)
    factors = factors.cpu().numpy()
    names = list(data.meta.get("factor_names") or [])
    clock = Clock()

    probes = {}
    with clock.part("probe_fit"):
        if names:
            codes, fac = train_codes(model, data, rcfg.probe.n_train, binarize, rcfg.seed,
                                     rcfg.batch_size)
            probes = fit_probes(codes, fac, names, rcfg.probe.C, rcfg.probe.max_iter)

    with clock.part("corruptions"):
        curves, clean, skipped, points = corruption_curves(
            model, x, rcfg.corruptions, seed=rcfg.seed, batch_size=rcfg.batch_size,
            elbo_samples=rcfg.elbo_samples, probes=probes, factors=factors, factor_names=names)
        levels = {key: rcfg.corruptions[key[0]] for key in curves}

    metrics: dict = dict(clean)
    # gradients w.r.t. the input exist only through a differentiable encoder
    differentiable = input_differentiable(model, x)
    with clock.part("jacobian"):
        if rcfg.jacobian.n and differentiable:
            with torch.no_grad():
                sq = jacobian_frobenius(model.represent, x[:rcfg.jacobian.n],
                                        rcfg.jacobian.chunk)
            metrics["jacobian_frob"] = float(sq.sqrt().mean())
            metrics["jacobian_frob_sq"] = float(sq.mean())

    with clock.part("attacks"):
        a = rcfg.attack
        adv = attack_curves(model, x[:a.n], a.eps if differentiable else {}, steps=a.steps,
                            step_size=a.step_size, seed=rcfg.seed, batch_size=rcfg.batch_size)
        curves.update(adv)
        levels.update({key: a.eps[key[0].removeprefix("attack_")] for key in adv})
    clock.total()
    seconds = {**clock.wall, "total_cpu": clock.cpu["total"]}   # CPU time of all threads

    for key, values in curves.items():
        metrics[f"auc_{key[0]}_{key[1]}"] = normalised_auc(levels[key], values)
    metrics["time_s"] = seconds
    with torch.no_grad():
        divergence = "kl" if has_kl(model.encode(x[:1])) else "code_dist"
    info = {"latent_divergence": divergence, "variational": is_variational(model),
            "encoder_differentiable": differentiable, "skipped_corruptions": skipped,
            "probed_factors": sorted(probes)}
    return metrics, {"curves": {k: (levels[k], v) for k, v in curves.items()}, "info": info,
                     "points": points}


# --- the stage ------------------------------------------------------------------------

CURVE_FILES = ("*.csv",)   # what the stage writes into its plots folder


def write_curves(plots_dir: Path, curves_by_seed: dict[int, dict]) -> list[Path]:
    """One CSV per curve, ``<group>-<metric>.csv``: level, value (mean over seeds), seed<k>."""
    seeds = sorted(curves_by_seed)
    keys = list(curves_by_seed[seeds[0]])
    with io.atomic_dir(plots_dir, CURVE_FILES) as tmp:
        for group, metric in keys:
            levels = curves_by_seed[seeds[0]][(group, metric)][0]
            cols = [curves_by_seed[s][(group, metric)][1] for s in seeds]
            with open(tmp / f"{group}-{metric}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["level", "value", *[f"seed{s}" for s in seeds]])
                for i, level in enumerate(levels):
                    row = [c[i] for c in cols]
                    w.writerow([f"{level:g}", f"{np.mean(row):.6g}", *[f"{v:.6g}" for v in row]])
    return sorted(Path(plots_dir).glob("*.csv"))


def robustness_stage(cfg: Params, name: str, models_dir: Path, data_root: Path,
                     out_json: Path, plots_dir: Path) -> dict:
    """``robustness@<name>``: every seed's checkpoint; metrics JSON and curve CSVs."""
    checked_model(cfg, "robustness", name)
    rcfg: RobustnessConfig = cfg.section("robustness")
    io.check_replaceable(plots_dir, CURVE_FILES)
    ctx = StageContext.create(cfg, "robustness", name, rcfg)
    per_seed, curves_by_seed, points, info = {}, {}, {}, {}
    for run in ctx.runs(models_dir):
        started = timestamp()
        model, ckpt, data = ctx.load(run, data_root)
        metrics, extra = evaluate_model(model, data, rcfg)
        metrics.update(started=started, finished=timestamp())
        per_seed[run.seed], curves_by_seed[run.seed], info = metrics, extra["curves"], extra["info"]
        points[run.seed] = extra["points"]
        print(f"{name} seed {run.seed}: robustness in {metrics['time_s']['total']:.1f} s "
              f"on {ctx.device_name}")
    write_curves(Path(plots_dir), curves_by_seed)
    out = stage_metrics(name, ckpt, per_seed, profile=cfg.profile, device=ctx.device_name,
                        n_test=min(rcfg.n_test or len(data.x_test), len(data.x_test)), **info)
    for seed, p in points.items():   # per seed only: a mean over seeds of points means nothing
        out["seeds"][str(seed)]["recon_err_points"] = p
    io.write_json(out_json, out)
    return out
