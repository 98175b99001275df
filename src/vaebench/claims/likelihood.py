"""Claims about likelihoods, bounds, inference gaps and gradient estimators (loglik and
train metrics)."""
from __future__ import annotations

import math

from scipy import stats

from vaebench.claims.core import (AtLeast, Above, Claim, Comparison, Context, Estimate,
                                  NotMeasured, Source, Within, compare, family, get, need,
                                  no_reference, reference)

BURDA = ("Burda, Grosse, Salakhutdinov 2016, \"Importance Weighted Autoencoders\", "
         "arXiv:1509.00519")
CREMER = ("Cremer, Li, Duvenaud 2018, \"Inference Suboptimality in Variational "
          "Autoencoders\", arXiv:1801.03558")


def _loglik_models(ctx: Context) -> list[str]:
    models = list(ctx.metrics.get("loglik", {}))
    if not models:
        raise NotMeasured("no loglik metrics: `evaluate.loglik` in params.yaml is empty or "
                          "the loglik stage has not run")
    return models


def _ks(ctx: Context, model: str) -> list[int]:
    return [int(k) for k in ctx.metrics["loglik"][model].get("ks") or []]


def _paired(name: str, model: str):
    """Statistic reading ``<name>`` and ``<name>_stderr`` of one log_p_hat entry."""
    def stat(d):
        return Estimate(need(d, name, model), get(d, f"{name}_stderr"),
                        "paired over test points")
    return stat


# --- ELBO <= log p_K, non-decreasing in K ----------------------------------------------------

def elbo_below(ctx: Context) -> list[Comparison]:
    return [compare(ctx, "loglik", (m,), f"{m} K={k}", _paired(f"log_p_hat.k{k}.minus_elbo", m))
            for m in _loglik_models(ctx) for k in _ks(ctx, m)]


def _step(model: str, k0: int, k1: int):
    def stat(d):
        entry = need(d, f"log_p_hat.k{k1}", model)
        if "minus_prev" in entry:
            return Estimate(entry["minus_prev"], entry.get("minus_prev_stderr"),
                            "paired over test points")
        # files written before the paired per-K difference: the difference of the two
        # paired differences to the ELBO; sd(a - b) <= sd(a) + sd(b) bounds its SE
        a, b = entry, need(d, f"log_p_hat.k{k0}", model)
        return Estimate(need(a, "minus_elbo", model) - need(b, "minus_elbo", model),
                        need(a, "minus_elbo_stderr", model) + need(b, "minus_elbo_stderr", model),
                        "upper bound SE_K + SE_K' (no paired per-K SE in the file)")
    return stat


def monotone_in_k(ctx: Context) -> list[Comparison]:
    out = []
    for m in _loglik_models(ctx):
        ks = _ks(ctx, m)
        out += [compare(ctx, "loglik", (m,), f"{m} K={k0}→{k1}", _step(m, k0, k1))
                for k0, k1 in zip(ks, ks[1:])]
    return out


# --- one model against its family's reference on log p_K -------------------------------------

def _loglik_gain(model: str, ref: str, k: int):
    """log p_K(model) − log p_K(ref) at K; paired over the test points both evaluated."""
    def stat(a, b):
        pa, pb = a.get("log_p_hat_points"), b.get("log_p_hat_points")
        if pa and pb and len(pa) == len(pb):
            diff = [x - y for x, y in zip(pa, pb)]
            n = len(diff)
            mean = sum(diff) / n
            se = math.sqrt(sum((x - mean) ** 2 for x in diff) / (n - 1) / n) if n > 1 else None
            return Estimate(mean, se, f"paired over {n} test points")
        ea, eb = need(a, f"log_p_hat.k{k}", model), need(b, f"log_p_hat.k{k}", ref)
        return Estimate(ea["mean"] - eb["mean"], math.hypot(ea["stderr"], eb["stderr"]),
                        "SEs combined as independent (conservative: the test points are shared)")
    return stat


def _against_reference(ctx: Context, models: list[str], fam: str) -> list[Comparison]:
    out = []
    for m in models:
        ref = reference(ctx.cfg, fam, m)
        if ref is None:
            out.append(no_reference(m, fam, ctx.cfg))
            continue
        ka, kb = (ctx.metrics.get("loglik", {}).get(x, {}).get("k_max") for x in (m, ref))
        if ka is not None and kb is not None and ka != kb:
            out.append(Comparison(f"{m} − {ref}", (m, ref),
                                  missing=f"largest K differs ({ka:g} vs {kb:g})"))
            continue
        out.append(compare(ctx, "loglik", (m, ref), f"{m} − {ref}",
                           _loglik_gain(m, ref, int(ka or 0))))
    return out


def iwae_above_vae(ctx: Context) -> list[Comparison]:
    models = family(ctx.cfg, "iwae")
    if not models:
        raise NotMeasured("no model of family iwae in params.yaml models")
    return _against_reference(ctx, models, "vae")


def learned_priors(ctx: Context) -> list[Comparison]:
    models = [m for m in family(ctx.cfg, "vae")
              if getattr(ctx.cfg.models[m], "prior", "standard") != "standard"]
    if not models:
        raise NotMeasured("no vae with a learned prior (prior: gaussian | mog | vamp) in "
                          "params.yaml models")
    return _against_reference(ctx, models, "vae")


# --- exact log p(x), gaps --------------------------------------------------------------------

def ppca_exact(ctx: Context) -> list[Comparison]:
    models = family(ctx.cfg, "ppca")
    if not models:
        raise NotMeasured("no model of family ppca in params.yaml models")
    out = []
    for m in models:
        ks = _ks(ctx, m) if m in ctx.metrics.get("loglik", {}) else [None]
        out += [compare(ctx, "loglik", (m,), f"{m} K={k}", _paired(f"log_p_hat.k{k}.error", m))
                for k in ks]
    return out


def gaps_non_negative(ctx: Context) -> list[Comparison]:
    out = []
    for m in _loglik_models(ctx):
        seeds = (ctx.metrics["loglik"][m].get("seeds") or {}).values()
        if not any(isinstance(get(s, "gaps.approximation"), dict) for s in seeds):
            continue   # loglik.gap_n: 0, or a model without a diagonal-Gaussian q
        for gap in ("approximation", "amortisation"):
            out.append(compare(ctx, "loglik", (m,), f"{m} {gap}", lambda d, g=gap, m=m: Estimate(
                need(d, f"gaps.{g}.mean", m), need(d, f"gaps.{g}.stderr", m),
                "over the gap's test points")))
    if not out:
        raise NotMeasured("no loglik metrics file holds gaps (loglik.gap_n is 0?)")
    return out


# --- gradient variance -----------------------------------------------------------------------

RATIO = "diagnostics.grad_var_ratio_score_function_to_reparam"


def score_function_variance(ctx: Context) -> list[Comparison]:
    models = [m for m, d in ctx.metrics.get("train", {}).items()
              if any("grad_var_ratio_score_function_to_reparam" in (s.get("diagnostics") or {})
                     for s in (d.get("seeds") or {}).values())]
    if not models:
        raise NotMeasured("no train metrics record the gradient-variance diagnostic "
                          "(VAE family with grad_var_repeats >= 2)")

    def stat(m):
        repeats = getattr(ctx.cfg.models[m], "grad_var_repeats", 0)
        # a ratio of two sample variances of `repeats` draws: F(r-1, r-1) around the truth;
        # conservative, as the sum over parameters has more degrees of freedom
        se = (math.log10(stats.f.ppf(0.975, repeats - 1, repeats - 1)) / 1.96
              if repeats >= 2 else None)

        def one(d):
            ratio = need(d, RATIO, m)
            return Estimate(math.log10(ratio), se, f"F interval of a variance ratio, {repeats} "
                                                   "gradient draws each")
        return one
    return [compare(ctx, "train", (m,), m, stat(m)) for m in models]


CLAIMS = [
    Claim("elbo_below_log_p", "The ELBO is at most the importance-sampling estimate log p̂_K "
          "at every K, for every probabilistic model.",
          Source(BURDA, "Theorem 1"), "log p̂_K − ELBO (nats per image), per model and K",
          elbo_below, AtLeast(0.0)),
    Claim("log_p_monotone_in_k", "log p̂_K does not decrease as K grows, for every "
          "probabilistic model.",
          Source(BURDA, "Theorem 1 (L_{K+1} ≥ L_K)"),
          "log p̂_K − log p̂_K' for consecutive K' < K (nats per image)",
          monotone_in_k, AtLeast(0.0)),
    Claim("iwae_above_vae", "Every IWAE has a higher log p̂ at the largest K than the VAE "
          "with a standard prior on the same dataset.",
          Source(BURDA, "Table 1 (MNIST, one stochastic layer, k = 5)",
                 "NLL 86.47 (VAE) vs 85.54 (IWAE), a 0.93-nat gain; 86.76 vs 84.78 at k = 50"),
          "log p̂_K(IWAE) − log p̂_K(VAE), largest K (nats per image)",
          iwae_above_vae, Above(0.0, resolution=0.93)),
    Claim("learned_prior_not_worse", "Every learned prior (VampPrior, mixture, diagonal r_λ) "
          "is at least as good as N(0, I) on log p̂ at the largest K.",
          Source("Tomczak & Welling 2018, \"VAE with a VampPrior\", arXiv:1705.07120",
                 "experiments on static MNIST (log-likelihood table)"),
          "log p̂_K(learned prior) − log p̂_K(standard prior), largest K (nats per image)",
          learned_priors, AtLeast(0.0, resolution=1.0),
          finding="Not reproduced on quick and no bug found: 1,260 steps on 4,000 images "
                  "leave every model unconverged and the learned priors longer in posterior "
                  "collapse; 5x the steps narrows the r_λ gap (21 → 7 nats) but not the "
                  "mixtures'; a KL warm-up (train.kl_warmup_epochs) makes it worse within "
                  "this budget. Evidence: docs/findings.md, studies/learned_priors.py."),
    Claim("ppca_is_exact", "For PPCA (q = the exact posterior) the importance-sampling "
          "estimate equals the exact log p(x) at every K.",
          Source("Tipping & Bishop 1999, \"Probabilistic Principal Component Analysis\", "
                 "JRSS B 61(3)", "closed-form log p(x) and posterior"),
          "log p̂_K − exact log p(x) (nats per image); tolerance 1e-3 nats for float32 sums",
          ppca_exact, Within(tolerance=1e-3)),
    Claim("gaps_non_negative", "The approximation gap (log p(x) − ELBO[q*]) and the "
          "amortisation gap (ELBO[q*] − ELBO[q]) are non-negative.",
          Source(CREMER, "Section 3 (gap decomposition)"),
          "each gap (nats per image), per model", gaps_non_negative, AtLeast(0.0),
          finding="PPCA's q is the exact posterior, so its gaps are 0 and the q* search can "
                  "only move away: its amortisation gap measures the optimiser's noise floor "
                  "(about −0.04 nats on quick). docs/findings.md."),
    Claim("score_function_variance", "Score-function gradients of the ELBO have orders of "
          "magnitude (at least 10x) more variance than reparameterised ones.",
          Source("Kingma & Welling 2014, \"Auto-Encoding Variational Bayes\", "
                 "arXiv:1312.6114", "Section 2.3 (the reparameterisation trick)"),
          "log10(Var[score-function grad_φ] / Var[reparameterised grad_φ]) on one minibatch",
          score_function_variance, Above(1.0, resolution=0.5)),
]
