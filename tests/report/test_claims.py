"""The claims registry on hand-made metrics in the stages' layouts: for every claim, a case
that must be reproduced, one that must not, and one that cannot be measured; then the
report stage writing claims.json and showing the verdicts first."""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from vaebench.claims import CLAIMS, Context, alternatives, evaluate_claims
from vaebench.claims.core import (NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Above, AtLeast,
                                  Estimate, Within, interval, paired_relative_gain)
from vaebench.config import load_config
from vaebench.report.stage import report_stage

ROOT = Path(__file__).resolve().parents[2]
R, NR, NM = REPRODUCED, NOT_REPRODUCED, NOT_MEASURED


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    """params.yaml at the tiny profile, and a twin whose BetaVAE score uses 5,000 points."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = "tiny"
    folder = tmp_path_factory.mktemp("params")
    small = folder / "params.yaml"
    small.write_text(yaml.safe_dump(raw, sort_keys=False))
    big_raw = copy.deepcopy(raw)
    big_raw["profiles"]["tiny"]["disentangle"]["metrics"]["beta_vae"]["num_eval"] = 5000
    big = folder / "big.yaml"
    big.write_text(yaml.safe_dump(big_raw, sort_keys=False))
    return small, big


@pytest.fixture(scope="module")
def configs(params_file):
    small, big = params_file
    return {"small": load_config(small), "big": load_config(big),
            "paper": load_config(small, "paper")}


def _file(model: str, per_seed: list[dict], **top) -> dict:
    """A metrics file in runs.stage_metrics' layout (the report reads only 'seeds' here)."""
    return {"model": model, **top, "seeds": {str(s): d for s, d in enumerate(per_seed)}}


def _with_se(value, se):
    return {"mean": value, "stderr": se}


def _lp(ks: dict, points=None) -> dict:
    """One seed of a loglik file: ks = {K: (mean, stderr, minus_elbo, se, minus_prev, se)}."""
    d = {"ks": list(ks), "k_max": max(ks), "log_p_hat": {}}
    for k, (mean, se, me, me_se, mp, mp_se) in ks.items():
        e = {"mean": mean, "stderr": se, "minus_elbo": me, "minus_elbo_stderr": me_se}
        if mp is not None:
            e.update(minus_prev=mp, minus_prev_stderr=mp_se)
        d["log_p_hat"][f"k{k}"] = e
    if points is not None:
        d["log_p_hat_points"] = [float(p) for p in points]
    return d


def _loglik_top(per_seed):
    return {"ks": per_seed[0]["ks"], "k_max": per_seed[0]["k_max"]}


# --- one scenario per claim: case -> (metrics, plots writer or None, config key) ------------

def elbo_below_log_p(case):
    if case == NM:
        return {}
    k10 = {R: 2.0, NR: -2.0}[case]
    seed = _lp({1: (-100, 1, 0.0, 0.1, None, None), 10: (-98, 1, k10, 0.1, 2.0, 0.1)})
    return {"loglik": {"mnist_vae": _file("mnist_vae", [seed], **_loglik_top([seed]))}}


def log_p_monotone_in_k(case):
    if case == NM:
        return {"train": {}}
    step = {R: 0.5, NR: -1.0}[case]
    seed = _lp({1: (-100, 1, 0.0, 0.1, None, None), 10: (-99, 1, 1.0, 0.1, step, 0.1)})
    return {"loglik": {"mnist_vae": _file("mnist_vae", [seed], **_loglik_top([seed]))}}


def iwae_above_vae(case):
    rng = np.random.default_rng(0)
    base = rng.normal(-100, 10, 400)
    gain, noise = {R: (1.5, 0.2), NR: (-1.0, 0.2), NM: (0.2, 40.0)}[case]
    files = {}
    for name, pts in (("mnist_vae", base), ("mnist_iwae", base + gain + rng.normal(0, noise, 400))):
        seed = _lp({10: (float(pts.mean()), 0.5, 3.0, 0.1, None, None)}, pts)
        files[name] = _file(name, [seed], **_loglik_top([seed]))
    return {"loglik": files}


def learned_prior_not_worse(case):
    """Several seeds: the t-interval over seeds decides."""
    gains = {R: [0.5, 0.6, 0.7], NR: [-30.0, -32.0], NM: [5.0, -5.0]}[case]
    files = {"mnist_vae": [_lp({10: (-100.0, 1, 3, .1, None, None)})] * len(gains)}
    for name in ("mnist_vae_gaussprior", "mnist_vae_mog", "mnist_vae_vamp"):
        files[name] = [_lp({10: (-100.0 + g, 1, 3, .1, None, None)}) for g in gains]
    return {"loglik": {n: _file(n, s, **_loglik_top(s)) for n, s in files.items()}}


def ppca_is_exact(case):
    error, se = {R: (5e-5, 1e-6), NR: (0.5, 0.01), NM: (5e-5, None)}[case]
    seed = _lp({1: (250.0, 5, 0.0, .01, None, None)})
    seed["log_p_hat"]["k1"].update(error=error, error_stderr=se)
    return {"loglik": {"mnist_ppca": _file("mnist_ppca", [seed], **_loglik_top([seed]))}}


def gaps_non_negative(case):
    seed = _lp({1: (-100, 1, 0.0, 0.1, None, None)})
    if case != NM:
        approx = {R: 0.5, NR: -1.0}[case]
        seed["gaps"] = {"approximation": _with_se(approx, 0.1), "amortisation": _with_se(1, .1)}
    return {"loglik": {"mnist_vae": _file("mnist_vae", [seed], **_loglik_top([seed]))}}


def score_function_variance(case):
    if case == NM:   # no train file records the diagnostic
        return {"train": {"mnist_vae_score": _file("mnist_vae_score", [{"diagnostics": {}}])}}
    ratio = {R: 1000.0, NR: 2.0}[case]
    diag = {"grad_var_ratio_score_function_to_reparam": ratio}
    return {"train": {"mnist_vae_score": _file("mnist_vae_score", [{"diagnostics": diag}])}}


def beta_vae_betavae_score(case):
    accs = {R: (0.9, 0.6), NR: (0.4, 0.6), NM: (0.9, 0.6)}[case]
    return {"disentangle": {n: _file(n, [{"beta_vae": {"eval_accuracy": a}}])
                            for n, a in zip(("dsprites_beta_vae", "dsprites_vae"), accs)}}


def beta_vae_mig(case):
    migs = {R: ([0.2, 0.22], [0.05, 0.06]), NR: ([0.01, 0.012], [0.05, 0.052]),
            NM: ([0.2], [0.05])}[case]
    return {"disentangle": {n: _file(n, [{"mig": {"mig": v}} for v in vals])
                            for n, vals in zip(("dsprites_beta_vae", "dsprites_vae"), migs)}}


def beta_tc_vae_mig(case):
    migs = {R: ([0.2, 0.21], [0.05, 0.058]), NR: ([0.01, 0.012], [0.05, 0.052]),
            NM: ([0.2], [0.05])}[case]
    return {"disentangle": {n: _file(n, [{"mig": {"mig": v}} for v in vals])
                            for n, vals in zip(("dsprites_beta_tc_vae", "dsprites_beta_vae"),
                                               migs)}}


def factor_vae_factorvae_score(case):
    """R / NR: three seeds decide by the t-interval; NM: one seed, whose binomial SE on
    the tiny profile's num_eval (10) is far wider than the resolution."""
    accs = {R: ([0.8, 0.82, 0.81], [0.6, 0.61, 0.6]), NR: ([0.3, 0.31, 0.3], [0.8, 0.8, 0.81]),
            NM: ([0.8], [0.6])}[case]
    return {"disentangle": {n: _file(n, [{"factor_vae": {"eval_accuracy": a}} for a in vals])
                            for n, vals in zip(("dsprites_factor_vae", "dsprites_beta_vae"),
                                               accs)}}


DAE_PAIRS = [("mnist_dae", "mnist_ae"), ("dsprites_dae", "dsprites_ae")]


def _masking_curves(errs: dict[str, list[float]], level: float):
    """A plots writer: ``masking-recon_err.csv`` of each model, its errors per seed at level."""
    def plots(root: Path):
        for name, vals in errs.items():
            folder = root / "robustness" / name
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "masking-recon_err.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["level", "value", *[f"seed{s}" for s in range(len(vals))]])
                w.writerow([0.0, 1.0, *[1.0] * len(vals)])
                w.writerow([level, float(np.mean(vals)), *vals])
    return plots


def dae_denoises(case):
    errs = {R: ([8.0, 8.2], [10.0, 10.1]), NR: ([12.0, 12.1], [10.0, 10.1]),
            NM: ([8.0, 8.2], [10.0, 10.1])}[case]
    level = 0.5 if case == NM else 0.25      # NM: the DAE's level is not on the curve
    metrics = {"robustness": {n: _file(n, [{}, {}]) for pair in DAE_PAIRS for n in pair}}
    return metrics, _masking_curves({n: v for pair in DAE_PAIRS for n, v in zip(pair, errs)},
                                    level)


def cae_contracts(case):
    cae, ae = {R: ((3.0, .1), (130.0, 5.0)), NR: ((200.0, 5.0), (130.0, 5.0)),
               NM: ((3.0, None), (130.0, None))}[case]

    def diag(v, se):
        return {"diagnostics": {"jacobian_sq_norm": v, "jacobian_sq_norm_stderr": se}}
    return {"train": {f"{d}_{f}": _file(f"{d}_{f}", [diag(*v)])
                      for d in ("mnist", "dsprites") for f, v in (("cae", cae), ("ae", ae))}}


def sparse_fewer_active(case):
    sparse = {R: 0.4, NR: 0.95, NM: 0.4}[case]
    se = None if case == NM else 0.01

    def diag(v):
        return {"diagnostics": {"active_fraction": v, "active_fraction_stderr": se}}
    return {"train": {"mnist_sparse_ae": _file("mnist_sparse_ae", [diag(sparse)]),
                      "mnist_ksparse_ae": _file("mnist_ksparse_ae", [diag(sparse)]),
                      "mnist_ae": _file("mnist_ae", [diag(0.8)])}}


def vqvae_reconstructs(case):
    vq = {R: [10.0, 11.0], NR: [40.0, 40.5], NM: [10.0]}[case]
    vae = [30.0, 30.4][:len(vq)]
    return {"robustness": {n: _file(n, [{"recon_err_clean": v} for v in vals])
                           for n, vals in (("mnist_vqvae", vq), ("mnist_vae", vae))}}


def tdvae_beats_copy(case):
    pred = {R: 0.1, NR: 0.3, NM: 0.1}[case]
    diag = {}
    for h in (1, 2, 4, 8):
        diag.update({f"copy_mse_h{h}": 0.2, f"pred_mse_h{h}": pred})
        if case != NM:
            diag[f"copy_gain_stderr_h{h}"] = 0.001
    return {"train": {"moving_sprites_tdvae": _file("moving_sprites_tdvae", [{"diagnostics": diag}])}}


SCENARIOS = {f.__name__: f for f in (
    elbo_below_log_p, log_p_monotone_in_k, iwae_above_vae, learned_prior_not_worse,
    ppca_is_exact, gaps_non_negative, score_function_variance, beta_vae_betavae_score,
    beta_vae_mig, beta_tc_vae_mig, factor_vae_factorvae_score, dae_denoises, cae_contracts,
    sparse_fewer_active, vqvae_reconstructs, tdvae_beats_copy)}


# --- one seed: the reconstruction claims decided by the paired SE over test points --------

def _paired_errors(gain: float, n: int = 300, seed: int = 0) -> tuple[list, list]:
    """(model, reference) errors on n shared points: the points differ a lot in how hard
    they are (shared by both models), the model lowers each error by ``gain`` up to
    10% noise of its own. Rounded as the robustness stage stores them."""
    rng = np.random.default_rng(seed)
    ref = rng.gamma(2.0, 10.0, n)
    model = ref * (1 - gain) * rng.lognormal(0.0, 0.1, n)
    return [float(f"{v:.5g}") for v in model], [float(f"{v:.5g}") for v in ref]


def dae_one_seed(case):
    """One seed; R / NR: the files hold the per-point errors at masking 0.25; NM: they do
    not (files written before them)."""
    gain = {R: 0.3, NR: -0.2, NM: 0.3}[case]
    metrics, errs = {"robustness": {}}, {}
    for dae, ae in DAE_PAIRS:
        for name, pts in zip((dae, ae), _paired_errors(gain)):
            seed = {} if case == NM else {"recon_err_points": {"clean": pts[:5],
                                                                "masking": {"0.25": pts}}}
            metrics["robustness"][name] = _file(name, [seed])
            errs[name] = [float(np.mean(pts))]
    return metrics, _masking_curves(errs, 0.25)


def vqvae_one_seed(case):
    gain = {R: 0.3, NR: -0.2, NM: 0.3}[case]
    files = {}
    for name, pts in zip(("mnist_vqvae", "mnist_vae"), _paired_errors(gain)):
        seed = {"recon_err_clean": float(np.mean(pts))}
        if case != NM:
            seed["recon_err_points"] = {"clean": pts}
        files[name] = _file(name, [seed])
    return {"robustness": files}


@pytest.mark.parametrize("case", [R, NR, NM])
@pytest.mark.parametrize("claim_id,scenario", [("dae_denoises", dae_one_seed),
                                               ("vqvae_reconstructs", vqvae_one_seed)])
def test_one_seed_reconstruction_claims_use_the_paired_se(claim_id, scenario, case, configs,
                                                          tmp_path):
    built = scenario(case)
    metrics, plots = built if isinstance(built, tuple) else (built, None)
    if plots:
        plots(tmp_path)
    ctx = Context(configs["small"], metrics, tmp_path)
    (row,) = evaluate_claims(ctx, [c for c in CLAIMS if c.id == claim_id])["claims"]
    assert row["verdict"] == case, json.dumps(row, default=str)
    if case == NM:   # no points: today's behaviour, the value without an interval
        assert row["half_width"] is None and "no standard error" in row["reason"]
        return
    assert "paired over 300 test points" in row["method"]
    # pairing: far narrower than the two means' independent SEs would give
    a, b = _paired_errors({R: 0.3, NR: -0.2}[case])
    se_a, se_b = (np.std(v, ddof=1) / np.sqrt(len(v)) for v in (a, b))
    independent = 1.96 * np.mean(a) / np.mean(b) * np.hypot(se_a / np.mean(a), se_b / np.mean(b))
    assert row["half_width"] < independent / 3


def test_paired_relative_gain_by_hand_and_against_the_bootstrap():
    # a = [1, 2, 3], b = [2, 2, 4]: R = 2 / (8/3) = 0.75, residuals a - R b = -0.5, 0.5, 0,
    # sample variance 0.25, SE = sqrt(0.25 / 3) / (8/3)
    est = paired_relative_gain([1.0, 2.0, 3.0], [2.0, 2.0, 4.0])
    assert est.value == pytest.approx(0.25)
    assert est.se == pytest.approx(np.sqrt(0.25 / 3) / (8 / 3))
    # the delta method against the bootstrap over points of 1 - mean(a*) / mean(b*)
    a, b = map(np.asarray, _paired_errors(0.2, n=400, seed=1))
    est = paired_relative_gain(list(a), list(b))
    idx = np.random.default_rng(2).integers(0, len(a), (4000, len(a)))
    boot = 1 - a[idx].mean(1) / b[idx].mean(1)
    assert est.value == pytest.approx(1 - a.mean() / b.mean())
    assert est.se == pytest.approx(boot.std(ddof=1), rel=0.1)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_relative_gain([1.0, 2.0], [1.0, 2.0, 3.0])


def test_every_claim_has_a_scenario_and_a_source():
    assert set(SCENARIOS) == {c.id for c in CLAIMS}
    assert all(c.source.cite and c.statement and c.statistic for c in CLAIMS)


@pytest.mark.parametrize("case", [R, NR, NM])
@pytest.mark.parametrize("claim_id", list(SCENARIOS))
def test_claim_verdict(claim_id, case, configs, tmp_path):
    built = SCENARIOS[claim_id](case)
    metrics, plots = built if isinstance(built, tuple) else (built, None)
    if plots:
        plots(tmp_path)
    # the BetaVAE score needs evaluation sizes that resolve 0.1 for a verdict either way
    cfg = configs["big" if claim_id == "beta_vae_betavae_score" and case != NM else "small"]
    ctx = Context(cfg, metrics, tmp_path, {"paper": configs["paper"]})
    (row,) = evaluate_claims(ctx, [c for c in CLAIMS if c.id == claim_id])["claims"]
    assert row["verdict"] == case, json.dumps(row, default=str)
    if case == NM:
        assert row["reason"]
    else:
        assert row["half_width"] is not None and row["value"] is not None


def test_underpowered_betavae_score_names_the_profile_that_decides(configs, tmp_path):
    ctx = Context(configs["small"], beta_vae_betavae_score(NM), tmp_path,
                  {"paper": configs["paper"]})
    (row,) = evaluate_claims(ctx, [c for c in CLAIMS if c.id == "beta_vae_betavae_score"])["claims"]
    assert row["verdict"] == NM
    assert "wider than the effect" in row["reason"] and "profile `paper` (num_eval 5000)" in row["reason"]


def test_missing_model_is_not_measured_with_the_reason(configs, tmp_path):
    metrics = iwae_above_vae(R)
    del metrics["loglik"]["mnist_iwae"]
    ctx = Context(configs["small"], metrics, tmp_path)
    (row,) = evaluate_claims(ctx, [c for c in CLAIMS if c.id == "iwae_above_vae"])["claims"]
    assert row["verdict"] == NM and "mnist_iwae" in row["reason"]


def test_one_failing_comparison_fails_the_claim():
    """Two priors reproduce, one does not: the claim is not reproduced, shown by the failure."""
    files = {"mnist_vae": [_lp({10: (-100.0, 1, 3, .1, None, None)})] * 2,
             "mnist_vae_gaussprior": [_lp({10: (-99.5, 1, 3, .1, None, None)})] * 2,
             "mnist_vae_mog": [_lp({10: (-99.0, 1, 3, .1, None, None)})] * 2,
             "mnist_vae_vamp": [_lp({10: (-140.0 - s, 1, 3, .1, None, None)}) for s in (0, 1)]}
    metrics = {"loglik": {n: _file(n, s, **_loglik_top(s)) for n, s in files.items()}}
    cfg = load_config(ROOT / "params.yaml")
    (row,) = evaluate_claims(Context(cfg, metrics), [c for c in CLAIMS
                                                     if c.id == "learned_prior_not_worse"])["claims"]
    assert row["verdict"] == NR and row["shown"] == "mnist_vae_vamp − mnist_vae"
    assert row["counts"] == {R: 2, NR: 1, NM: 0}


def test_interval_rules():
    # two seeds: Student-t with 1 degree of freedom (12.706) on sd / sqrt(2)
    value, half, how = interval({"0": Estimate(1.0), "1": Estimate(3.0)})
    assert value == 2.0 and half == pytest.approx(12.7062 * np.sqrt(2) / np.sqrt(2), rel=1e-4)
    assert "2 seeds" in how
    assert interval({"0": Estimate(1.0, 0.5)})[1] == pytest.approx(0.98)
    assert interval({"0": Estimate(1.0)})[1] is None
    # the tests: failing needs the whole interval on the wrong side; passing, on the right
    assert AtLeast(0).decide(-1.0, 2.0)[0] == R and AtLeast(0).decide(-3.0, 2.0)[0] == NR
    assert AtLeast(0, resolution=1).decide(-1.0, 2.0)[0] == NM
    assert Above(0, resolution=1).decide(0.5, 0.4)[0] == R
    assert Above(0, resolution=1).decide(0.5, 0.6)[0] == NR
    assert Above(0, resolution=1).decide(0.5, 2.0)[0] == NM
    assert Within(1e-3).decide(5e-4, 1e-6)[0] == R and Within(1e-3).decide(0.1, 0.01)[0] == NR


def test_other_profiles_are_resolved_from_params(params_file):
    small, _ = params_file
    found = alternatives(small, "tiny")
    assert "tiny" not in found and {"quick", "paper"} <= set(found)
    assert alternatives(None, "tiny") == {}


# --- the report stage -------------------------------------------------------------------------

@pytest.fixture
def cfg(raw_params, write_params):
    raw_params["profile"] = "tiny"
    raw_params["seeds"] = [0, 1]
    raw_params["evaluate"] = {"loglik": ["mnist_vae", "dsprites_vae"],
                              "disentangle": ["dsprites_vae", "dsprites_beta_vae"],
                              "robustness": ["mnist_ae", "mnist_vae", "dsprites_vae"]}
    return load_config(write_params(raw_params))


def test_report_writes_claims_json_and_shows_the_verdicts_first(cfg, tmp_path, write_reports):
    paths = write_reports(tmp_path, cfg)
    report_stage(cfg, paths["metrics"], paths["plots"], paths["figures"],
                 paths["figures"] / "report", tmp_path)
    result = json.loads((tmp_path / "claims.json").read_text())
    assert [r["id"] for r in result["claims"]] == [c.id for c in CLAIMS]
    assert sum(result["summary"].values()) == len(CLAIMS)
    by_id = {r["id"]: r for r in result["claims"]}
    # the fixture's two seeds of mnist_vae / dsprites_vae: their gaps are measured
    assert by_id["gaps_non_negative"]["verdict"] != NM
    assert by_id["iwae_above_vae"]["verdict"] == NM            # no IWAE evaluated
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "index.html").read_text()
    assert md.index("Does this run reproduce the papers?") < md.index("The suite and its parameters")
    assert '<section id="claims">' in html
    assert html.index('<section id="claims">') < html.index('<section id="suite">')
    for r in result["claims"]:
        assert r["id"] in md and r["id"] in html
