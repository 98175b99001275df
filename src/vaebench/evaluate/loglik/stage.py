"""``loglik@<model>``: every log-likelihood number of one trained model, per seed.

For each seed's checkpoint, on the first ``loglik.n_test`` test inputs (the
section with the overrides of ``loglik.datasets.<its dataset>``): the
importance-sampling estimate log p_K(x) = L_K and the naive prior-sampling
estimate at every K of ``loglik.ks`` (mean over points with its standard
error), the ELBO with its reconstruction and KL terms, KL per latent
dimension, active units, the exact log p(x) and each estimate's error where the
model knows it (``Model.exact_log_prob``), and the inference gaps on the first
``loglik.gap_n`` points. Works through the common model interface only, so
every probabilistic family is evaluated the same way.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from vaebench import io
from vaebench.config import Params
from vaebench.evaluate.loglik.estimate import importance_estimates
from vaebench.evaluate.loglik.gaps import diagonal_start, fit_local_posterior
from vaebench.evaluate.loglik.posterior import (active_units, kl_per_dimension, kl_or_estimate,
                                                posterior_means)
from vaebench.models.capabilities import ExactLikelihood
from vaebench.runs import stage_metrics, timestamp
from vaebench.sections.loglik import LoglikConfig
from vaebench.stage import Clock, StageContext, checked_model


def summary(values: Tensor) -> dict:
    """Mean over test points and its standard error (None for a single point)."""
    v = values.detach().double()
    se = float(v.std() / math.sqrt(len(v))) if len(v) > 1 else None
    return {"mean": float(v.mean()), "stderr": se}


def exact_log_prob(model, x: Tensor, chunk: int) -> Tensor | None:
    """The model's exact log p(x) per point (float64), or None where it has none."""
    if not isinstance(model, ExactLikelihood):
        return None
    return torch.cat([model.exact_log_prob(xb).detach().double() for xb in x.split(chunk)])


def _compared(values: Tensor, exact: Tensor | None, elbo: Tensor | None = None,
              prev: Tensor | None = None) -> dict:
    """Summary of ``values`` with paired differences (their own standard errors, much
    smaller than the spread over points): ``error`` against the exact log p(x),
    ``minus_elbo`` against the ELBO, ``minus_prev`` against the estimate at the previous K."""
    out = summary(values)
    for name, other in (("error", exact), ("minus_elbo", elbo), ("minus_prev", prev)):
        if other is not None:
            diff = summary(values - other)
            out.update({name: diff["mean"], f"{name}_stderr": diff["stderr"]})
    return out


def inference_gaps(model, x: Tensor, log_p_hat: Tensor, exact: Tensor | None,
                   cfg: LoglikConfig, progress: bool = True) -> dict:
    """Approximation and amortisation gaps on ``x`` (Cremer et al. 2018; see gaps.py)."""
    q = model.encode(x)
    start = diagonal_start(q)
    if isinstance(start, str):
        return {"skipped": start}
    q_star, history = fit_local_posterior(model, x, q, steps=cfg.gap_steps, lr=cfg.gap_lr,
                                          n_samples=cfg.gap_samples, seed=cfg.seed,
                                          progress=progress)
    prior, k = model.prior(), cfg.gap_eval_samples
    elbos, bounds = {}, {}
    for name, dist in (("q", q), ("q_star", q_star)):   # same seed: common random numbers
        est = importance_estimates(model, x, [k], q=dist, naive=False, seed=cfg.seed,
                                   chunk_points=cfg.chunk_points,
                                   chunk_samples=cfg.chunk_samples, progress=progress)
        elbos[name] = est.recon - kl_or_estimate(dist, prior, est.log_ratio)[0]
        bounds[name] = est.log_p[k]
    out = {"n": len(x), "steps": cfg.gap_steps, "eval_samples": k,
           "elbo_q": summary(elbos["q"]), "elbo_q_star": summary(elbos["q_star"]),
           "log_p_hat": summary(log_p_hat),
           "log_p_hat_q_star": summary(bounds["q_star"]),   # L_K with q* as proposal
           "approximation": summary(log_p_hat - elbos["q_star"]),
           "amortisation": summary(elbos["q_star"] - elbos["q"]),
           "inference": summary(log_p_hat - elbos["q"]),
           "improved_fraction": float((elbos["q_star"] > elbos["q"]).double().mean()),
           "train_elbo_first": history[0], "train_elbo_last": history[-1]}
    if exact is not None:
        out["approximation_exact"] = summary(exact - elbos["q_star"])
    return out


def evaluate_model(model, x: Tensor, cfg: LoglikConfig, progress: bool = True) -> dict:
    """All log-likelihood numbers of ``model`` on test inputs ``x`` (N, *image)."""
    clock = Clock()
    # one encoder call serves everything (an SVI "encoder" runs an optimisation per call)
    q, prior = model.encode(x), model.prior()
    est = importance_estimates(model, x, cfg.ks, q=q, chunk_points=cfg.chunk_points,
                               chunk_samples=cfg.chunk_samples, seed=cfg.seed,
                               progress=progress)
    clock.lap("estimates")
    exact = exact_log_prob(model, x, cfg.chunk_points)
    clock.lap("exact")

    with torch.no_grad():
        kl, closed = kl_or_estimate(q, prior, est.log_ratio)
        kl_dims = kl_per_dimension(q, prior, cfg.kl_dim_samples, cfg.seed, x.device)
        n_active, activity = active_units(posterior_means(q, cfg.kl_dim_samples, cfg.seed,
                                                          x.device), cfg.active_threshold)
    elbo = est.recon - kl
    out = {"n_test": len(x), "ks": est.ks, "k_max": est.ks[-1],
           "elbo": _compared(elbo, exact), "recon": summary(est.recon), "kl": summary(kl),
           "kl_closed_form": closed, "active_units": n_active,
           # per unit: lists, kept per seed only (units of different seeds do not correspond)
           "unit_activity": [float(a) for a in activity],
           "log_p_hat": {f"k{k}": _compared(est.log_p[k], exact, elbo,
                                            est.log_p[est.ks[i - 1]] if i else None)
                         for i, k in enumerate(est.ks)},
           "naive": {f"k{k}": _compared(est.naive[k], exact) for k in est.ks},
           # per test point at the largest K (kept per seed only): the report's claims pair
           # models on the same test points, whose paired SE is far below the unpaired one
           "log_p_hat_points": [round(float(v), 4) for v in est.log_p[est.ks[-1]]]}
    if kl_dims is not None:
        out["kl_per_dim"] = [float(v) for v in kl_dims.double().mean(0)]
    if exact is not None:
        out["exact"] = summary(exact)
    clock.lap("posterior")
    if cfg.gap_n:
        n = min(cfg.gap_n, len(x))
        out["gaps"] = inference_gaps(model, x[:n], est.log_p[est.ks[-1]][:n],
                                     None if exact is None else exact[:n], cfg, progress)
    clock.lap("gaps")
    clock.total()
    out["time_s"], out["cpu_s"] = clock.wall, clock.cpu
    out["samples_x_images_per_s"] = len(x) * est.ks[-1] / clock.wall["estimates"]
    return out


def plot_rows(name: str, metrics: dict) -> pd.DataFrame:
    """One row per K (means over seeds): what ``dvc plots`` overlays across models."""
    rows = []
    for k in metrics["ks"]:
        est, naive = metrics["log_p_hat"][f"k{k}"], metrics["naive"][f"k{k}"]
        rows.append({"model": name, "k": k, "log_p_hat": est["mean"], "stderr": est["stderr"],
                     "naive": naive["mean"], "naive_stderr": naive["stderr"],
                     "elbo": metrics["elbo"]["mean"],
                     "exact": metrics.get("exact", {}).get("mean"),
                     "error": est.get("error")})
    return pd.DataFrame(rows)


def loglik_stage(cfg: Params, name: str, models_dir: Path, data_root: Path, out_json: Path,
                 plots_path: Path, progress: bool = True) -> dict:
    """``loglik@<name>``: write the metrics JSON and the plot CSV."""
    mcfg = checked_model(cfg, "loglik", name)
    lcfg: LoglikConfig = cfg.section("loglik").for_dataset(mcfg.dataset)
    ctx = StageContext.create(cfg, "loglik", name, lcfg)
    per_seed = {}
    for run in ctx.runs(models_dir):
        started = timestamp()
        model, ckpt, data = ctx.load(run, data_root)
        x = data.test_inputs(model.cfg.binarize)[:lcfg.n_test]
        result = evaluate_model(model, x, lcfg, progress)
        per_seed[run.seed] = {**result, "started": started, "finished": timestamp()}
        print(f"{name} seed {run.seed}: ELBO {result['elbo']['mean']:.2f}, log p_K(x) "
              f"{result['log_p_hat'][f'k{lcfg.ks[-1]}']['mean']:.2f} at K={lcfg.ks[-1]} "
              f"({result['time_s']['total']:.1f} s on {ctx.device_name})")
    metrics = stage_metrics(name, ckpt, per_seed, profile=cfg.profile, device=ctx.device_name,
                            ks=lcfg.ks, n_test=len(x), likelihood=ckpt["config"]["likelihood"],
                            binarize=ckpt["config"]["binarize"])  # the units of every number
    io.write_json(out_json, metrics)
    with io.atomic_path(plots_path) as tmp:
        plot_rows(name, metrics).to_csv(tmp, index=False)
    return metrics
