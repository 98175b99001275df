"""Fixture reports: metrics, curves and figures in the real layouts the stages write.

The files are built with the stages' own helpers (``runs.stage_metrics``,
``stats.summarise``, ``figures.save_image_rows``), so a change of layout
there shows up here. Two seeds, so every aggregate carries ``_ci95``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from vaebench import io
from vaebench.figures import save_image_rows
from vaebench.runs import stage_metrics
from vaebench.stats import summarise

SEEDS = (0, 1)
KS = (1, 5, 50)
# mnist_vae_gaussdec: a Gaussian density of intensities (nats ~ +1000), never to be ranked
# or drawn on one axis with the Bernoulli models (~ -100)
TRAINED = ("mnist_ae", "mnist_vae", "mnist_vae_gaussdec", "dsprites_vae", "dsprites_beta_vae")
LOGLIK = ("mnist_vae", "mnist_vae_gaussdec", "dsprites_vae")
DISENT = ("dsprites_vae", "dsprites_beta_vae")
ROBUST = ("mnist_ae", "mnist_vae", "dsprites_vae")
SAMPLEQ = ("mnist_ae", "mnist_vae", "dsprites_vae")
CORRUPTIONS = {"gaussian": [0.0, 0.1, 0.3], "masking": [0.0, 0.25, 0.5]}
ATTACKS = {"attack_l2": [0.0, 0.5, 1.0]}


def _ckpt(cfg, name):
    m = cfg.models[name]
    return {"config": {"family": m.family, "likelihood": m.likelihood, "binarize": m.binarize},
            "dataset": m.dataset}


def _centre(cfg, name) -> float:
    """Where a model's log-likelihoods lie: ~ -100 for a Bernoulli, ~ +1000 for a density."""
    return -100.0 if cfg.models[name].likelihood == "bernoulli" else 1000.0


def _train_json(cfg, name, rng):
    m = cfg.models[name]
    per_seed = {}
    for s in SEEDS:
        loss = -_centre(cfg, name) + 10 * rng.random()
        test = {"loss": loss, "recon": loss - 20, "kl": 20.0, "elbo": -loss}
        diagnostics = {"nll_bound": 95.5 + s, "recon_nll": 60.0, "code_nll": 35.5 + s,
                       "perplexity": 40.0} if name == "mnist_ae" else {}
        per_seed[s] = {"train": dict(test), "test": test, "diagnostics": diagnostics,
                       "time_s": 3.0 + s, "examples_per_s": 1000.0 + 10 * s}
    return {"model": name, "family": m.family, "dataset": m.dataset,
            "likelihood": m.likelihood, "binarize": m.binarize, "profile": cfg.profile,
            "device": "cpu", "n_params": 12345, "epochs": 2, **summarise(per_seed),
            "seeds": {str(s): r for s, r in per_seed.items()}}


def _summary(rng, centre):
    return {"mean": centre + rng.normal(), "stderr": 0.5 + 0.1 * rng.random()}


def _loglik_result(rng, centre):
    # the layout of evaluate.loglik.stage.evaluate_model
    base = centre + rng.normal()
    return {"n_test": 64, "ks": list(KS), "k_max": KS[-1],
            "elbo": _summary(rng, base - 3), "recon": _summary(rng, -80), "kl": _summary(rng, 20),
            "kl_closed_form": True, "active_units": int(rng.integers(3, 10)),
            "unit_activity": {"z0": 0.5, "z1": 0.001},
            "log_p_hat": {f"k{k}": _summary(rng, base + np.log(k)) for k in KS},
            "naive": {f"k{k}": _summary(rng, base - 50) for k in KS},
            "kl_per_dim": {"z0": 1.0, "z1": 0.0},
            "gaps": {"n": 8, "approximation": _summary(rng, 1.0),
                     "amortisation": _summary(rng, 2.0), "skipped_reason": None},
            "time_s": {"estimates": 1.0, "gaps": 0.5, "total": 1.6},
            "decoder_rows_per_s": 1e4}


def _disent_result(rng):
    # the layout of evaluate.disentangle.run_metrics (+ attributes, time_s)
    r = lambda: float(rng.random())  # noqa: E731
    return {"beta_vae": {"train_accuracy": r(), "eval_accuracy": r(), "time_s": 0.1,
                         "convergence_warnings": 0},
            "factor_vae": {"train_accuracy": r(), "eval_accuracy": r(), "num_active_dims": 5.0},
            "mig": {"mig": r()}, "sap": {"sap": r()},
            "dci": {"disentanglement": r(), "completeness": r(), "informativeness_train": r(),
                    "informativeness_test": r()},
            "modularity": {"modularity": r(), "explicitness_train": r(), "explicitness_test": r()},
            "attributes": {"scale_small_to_large": {"hit_rate": r(), "baseline_hit_rate": r(),
                                                    "vector_norm": 2.0}},
            "time_s": {"metrics": 2.0, "attributes": 1.0, "traversals": 0.5}}


def _robust_result(rng):
    out = {"recon_err_clean": 10 * rng.random(), "elbo_clean": -100.0, "jacobian_frob": 3.0,
           "time_s": {"corruptions": 1.0, "total": 2.0}}
    for group in [*CORRUPTIONS, *ATTACKS]:
        out[f"auc_{group}_recon_err" if group in CORRUPTIONS else f"auc_{group}_latent"] = \
            float(rng.random())
    return out


def _samplequality_result(rng, dataset):
    row = lambda: {f"fd_{dataset}classifier": 10 * float(rng.random()),  # noqa: E731
                   "precision": float(rng.random()), "recall": float(rng.random())}
    return {"samples": row(), "reconstructions": row(), "time_s": 1.5}


def _png(path: Path, title: str) -> None:
    save_image_rows(path, [("x", torch.rand(3, 1, 8, 8))], title)


def write_fixture_reports(root: Path, cfg, seed: int = 0) -> dict[str, Path]:
    """reports/{metrics,plots,figures} under ``root`` in the stages' layouts."""
    rng = np.random.default_rng(seed)
    metrics, plots, figures = root / "metrics", root / "plots", root / "figures"
    for name in TRAINED:
        io.write_json(metrics / "train" / f"{name}.json", _train_json(cfg, name, rng))
        for s in SEEDS:
            path = plots / "train" / name / f"seed{s}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["epoch", "step", "train_loss", "test_loss"])
                for epoch in (1, 2, 3):
                    w.writerow([epoch, 4 * epoch, 120 / epoch, 110 / epoch + s])
        _png(figures / "train" / name / "reconstructions.png", f"{name} reconstructions")
        if name != "mnist_ae":
            _png(figures / "train" / name / "samples.png", f"{name} samples")
    for name in LOGLIK:
        per_seed = {s: _loglik_result(rng, _centre(cfg, name)) for s in SEEDS}
        ckpt = _ckpt(cfg, name)
        io.write_json(metrics / "loglik" / f"{name}.json",
                      stage_metrics(name, ckpt, per_seed, profile=cfg.profile,
                                    device="cpu", ks=list(KS), n_test=64,
                                    likelihood=ckpt["config"]["likelihood"],
                                    binarize=ckpt["config"]["binarize"]))
    for name in DISENT:
        per_seed = {s: _disent_result(rng) for s in SEEDS}
        io.write_json(metrics / "disentangle" / f"{name}.json",
                      stage_metrics(name, _ckpt(cfg, name), per_seed, profile=cfg.profile,
                                    device="cpu", representation="mean",
                                    classifier={"accuracy": {"shape": 0.9}}))
        _png(figures / "disentangle" / name / "traversals.png", f"{name} traversals")
        _png(figures / "disentangle" / name / "attribute_vectors.png", f"{name} attributes")
    for name in ROBUST:
        per_seed = {s: _robust_result(rng) for s in SEEDS}
        io.write_json(metrics / "robustness" / f"{name}.json",
                      stage_metrics(name, _ckpt(cfg, name), per_seed, profile=cfg.profile,
                                    device="cpu", latent_divergence="kl", variational=True,
                                    probed_factors=[]))
        folder = plots / "robustness" / name
        folder.mkdir(parents=True, exist_ok=True)
        for group, levels in {**CORRUPTIONS, **ATTACKS}.items():
            metric = "recon_err" if group in CORRUPTIONS else "latent"
            with open(folder / f"{group}-{metric}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["level", "value", *[f"seed{s}" for s in SEEDS]])
                for level in levels:
                    vals = [level * 10 + s for s in SEEDS]
                    w.writerow([level, np.mean(vals), *vals])
    for name in SAMPLEQ:
        dataset = cfg.models[name].dataset
        per_seed = {s: _samplequality_result(rng, dataset) for s in SEEDS}
        io.write_json(metrics / "samplequality" / f"{name}.json",
                      stage_metrics(name, _ckpt(cfg, name), per_seed, profile=cfg.profile,
                                    device="cpu", n_reference=24, n_samples=24, kth_neighbour=3,
                                    featurenet={"test_accuracy": {"digit": 0.95}},
                                    floor={f"fd_{dataset}classifier": 0.125, "precision": 0.75,
                                           "recall": 0.625}))
    return {"metrics": metrics, "plots": plots, "figures": figures}


@pytest.fixture
def write_reports():
    """``write_reports(root, cfg)``: the fixture files under ``root``."""
    return write_fixture_reports
