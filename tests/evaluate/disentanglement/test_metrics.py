"""Property tests of the disentanglement metrics.

For every metric: perfect codes (the factors themselves, a permutation of
them, a strictly monotone transform of each) score near the top of the range
THE PROTOCOL ALLOWS, derived below per metric; uninformative codes (random,
constant) score near the bottom; a fixed rng seed gives identical values.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from vaebench.evaluate.disentanglement import (
    METRICS, beta_vae, dci, factor_vae, mig, modularity, sap,
)
from vaebench.evaluate.disentanglement.dci import disentanglement_completeness
from vaebench.evaluate.disentanglement.modularity import modularity_from_mi

# The protocol's LogisticRegression (default max_iter=100) does not converge on
# the (nearly) separable problems of perfect codes; the scores
# are nevertheless what the protocol defines, so the warning is noise here.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = (3, 6, 10, 8, 8)  # every factor has <= 20 values: one histogram bin each
DSPRITES = (3, 6, 40, 32, 32)  # orientation and positions exceed the 20 bins
# GradientBoosting fits one tree per class and stage, so DCI's cost grows with
# the total number of classes (35 in SMALL: ~3 s a run); a smaller grid keeps it fast.
DCI_SIZES = (3, 4, 5, 4)

# Small sample sizes (the protocol defaults are 10000/5000) keep the file fast.
FAST = {
    beta_vae: dict(num_train=1000, num_eval=500),
    factor_vae: dict(num_train=1000, num_eval=500, num_variance_estimate=2000),
    mig: dict(num_train=10000),
    dci: dict(num_train=500, num_test=300),
    sap: dict(num_train=2000, num_test=1000),
    modularity: dict(num_train=2000, num_test=1000),
}
SIZES = {m: (DCI_SIZES if m is dci else SMALL) for m in FAST}

# One strictly monotone map per factor column, mixing affine (either sign,
# different scales) and non-linear ones, with codes of order 1..100.
TRANSFORMS = (
    lambda v: 7.0 - 2.5 * v,
    lambda v: np.exp(v / 3.0),
    lambda v: 4.0 * np.cbrt(v + 1.0),
    lambda v: 0.5 * v - 1.0,
    lambda v: (v + 4.0) ** 2 / 10.0,
)
PERFECT = ("identity", "permuted", "monotone")


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    # The problems here are tiny: on a busy 2-core machine multi-threaded BLAS
    # only adds contention (logistic regression fits ran ~10x slower).
    with threadpool_limits(limits=1):
        yield


def codes_fn_for(kind: str, num_factors: int):
    perm = np.roll(np.arange(num_factors), 2)  # no fixed point
    if kind == "identity":
        return lambda f: f.astype(float)
    if kind == "permuted":
        return lambda f: f[:, perm].astype(float)
    if kind == "monotone":
        return lambda f: np.stack([TRANSFORMS[j](f[:, j].astype(float)) for j in range(num_factors)], 1)
    if kind == "random":  # independent of the factors
        gen = np.random.default_rng(99)
        return lambda f: gen.normal(size=(len(f), num_factors))
    if kind == "constant":
        return lambda f: np.full((len(f), num_factors), 0.7)
    if kind == "entangled":  # deterministic but mixed, so that scores depend on the sample
        weights = 1.3 + 2.1 * np.arange(num_factors)
        spread = np.linspace(1.0, 3.0, num_factors)
        return lambda f: f + 0.5 * np.roll(f, 1, axis=1) + np.sin(f @ weights)[:, None] * spread
    raise KeyError(kind)


def code_levels(kind: str, j: int, size: int) -> np.ndarray:
    """The code value of each level of factor j in a perfect code.  # (size,)"""
    levels = np.arange(size, dtype=float)
    return TRANSFORMS[j](levels) if kind == "monotone" else levels


@functools.lru_cache(maxsize=None)
def score(metric, kind: str, sizes: tuple = None, seed: int = 0) -> dict:
    sizes = sizes or SIZES[metric]
    codes_fn = codes_fn_for(kind, len(sizes))
    return metric.compute(codes_fn, sizes, np.random.default_rng(seed), **FAST[metric])


def binned_entropy_ratio(levels: np.ndarray, n_bins: int = 20) -> float:
    """H(20-bin histogram bin of the code) / H(factor), exactly, for a factor
    uniform over len(levels) values whose code values are `levels`.

    Written independently of the module (floor of the position, no np.histogram).
    """
    lo, hi = levels.min(), levels.max()
    bins = np.minimum(np.floor((levels - lo) / (hi - lo) * n_bins), n_bins - 1)
    p = np.unique(bins, return_counts=True)[1] / len(levels)
    return float(-(p * np.log(p)).sum() / np.log(len(levels)))


# ----------------------------------------------------------------------- MIG
def mig_bound(kind: str, sizes) -> float:
    # In a perfect code factor j's own dimension is a deterministic function of
    # it, so its (plug-in) MI equals the entropy of the BINNED factor; any other
    # dimension is independent of factor j (MI ~0). The best MIG the protocol
    # allows is therefore mean_j H(bin_j) / H(f_j): 1 when every value has its
    # own bin, below 1 when 20 bins merge 40 orientations or 32 positions.
    ratios = [binned_entropy_ratio(code_levels(kind, j, k)) for j, k in enumerate(sizes)]
    return float(np.mean(ratios))


@pytest.mark.parametrize("kind", PERFECT)
def test_mig_perfect_codes_reach_binning_bound(kind):
    bound = mig_bound(kind, SMALL)
    assert bound == pytest.approx(1.0)
    value = score(mig, kind)["mig"]
    assert 0.97 * bound <= value <= bound + 0.01


def test_mig_dsprites_sizes_are_capped_by_the_20_bins():
    bound = mig_bound("identity", DSPRITES)
    # orientation: 40 values -> 20 bins of 2: ratio log 20 / log 40 = 0.812;
    # positions: 32 values -> 12 bins of 2 and 8 of 1:
    # ratio (24/32 log 16 + 8/32 log 32) / log 32 = (0.75*4 + 0.25*5) / 5 = 0.85.
    orientation = np.log(20) / np.log(40)
    assert bound == pytest.approx((1 + 1 + orientation + 2 * 0.85) / 5)
    assert bound < 0.91  # a perfect code cannot score 1 under this protocol
    value = score(mig, "identity", DSPRITES)["mig"]
    assert 0.97 * bound <= value <= bound + 0.01


def test_mig_uninformative_codes_score_zero():
    # A random code only has the plug-in MI bias (~(B-1)(K-1)/2n nats, <0.01 of
    # the entropy here), and the gap between two such biases is smaller still.
    assert 0.0 <= score(mig, "random")["mig"] < 0.01
    assert score(mig, "constant")["mig"] == 0.0  # one bin: no information at all


def test_mig_from_arrays_hand_example():
    # Two balanced, exactly independent binary factors (full grid, repeated).
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25)
    assert mig.mig_from_arrays(factors.astype(float), factors)["mig"] == pytest.approx(1.0)
    # Factor 0 copied into both dims: its gap is 0; factor 1 is in no dim: 0.
    twice = factors[:, [0, 0]].astype(float)
    assert mig.mig_from_arrays(twice, factors)["mig"] == pytest.approx(0.0)


# ------------------------------------------------------------------- BetaVAE
@pytest.mark.parametrize("kind", PERFECT)
def test_beta_vae_perfect_codes_are_separable(kind):
    # Bound 1: in a perfect code the dimension of the shared factor k has
    # feature exactly 0, every other dimension a positive mean |difference|
    # (all 64 pairs agreeing has probability <= 3**-64), so the classes are
    # linearly separable.
    result = score(beta_vae, kind)
    assert result["train_accuracy"] >= 0.98
    assert result["eval_accuracy"] >= 0.98


@pytest.mark.parametrize("kind", ["random", "constant"])
def test_beta_vae_uninformative_codes_score_chance(kind):
    # Bottom of the range is chance, 1/F = 0.2, not 0: the features carry no
    # information about k, so the classifier can only favour one class. The
    # margin is ~3 binomial standard deviations for 500 eval points (0.018).
    assert score(beta_vae, kind)["eval_accuracy"] <= 1 / len(SMALL) + 0.06


def test_beta_vae_from_points_hand_example():
    labels = np.arange(40) % 2
    features = np.stack([labels, 1 - labels], axis=1) + 0.1  # dim `label` is the small one
    result = beta_vae.beta_vae_from_points(features, labels, features, labels)
    assert result == {"train_accuracy": 1.0, "eval_accuracy": 1.0}


# ----------------------------------------------------------------- FactorVAE
@pytest.mark.parametrize("kind", PERFECT)
def test_factor_vae_perfect_codes_vote_right(kind):
    # Bound 1: the fixed factor's own dimension has variance exactly 0 in its
    # batch while every other dimension varies, so every vote is correct.
    result = score(factor_vae, kind)
    assert result == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 5.0}


def test_factor_vae_random_codes_score_chance():
    # Votes of a random code ignore the fixed factor: eval accuracy ~1/F.
    result = score(factor_vae, "random")
    assert result["num_active_dims"] == 5.0
    assert result["eval_accuracy"] <= 1 / len(SMALL) + 0.06


def test_factor_vae_constant_codes_have_no_active_dims():
    expected = {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    assert score(factor_vae, "constant") == expected


def test_factor_vae_prunes_low_variance_dims():
    # Factor 2 is squeezed to std ~0.003 < 0.05: pruned. Its votes go to other
    # factors' dimensions, which the majority vote assigns to their own factor,
    # so the best accuracy is 1 - 1/F = 0.8 (the majority vote cannot do better).
    def squeezed(f):
        codes = f.astype(float)
        codes[:, 2] *= 0.001
        return codes
    result = factor_vae.compute(squeezed, SMALL, np.random.default_rng(0), **FAST[factor_vae])
    assert result["num_active_dims"] == 4.0
    assert result["eval_accuracy"] == pytest.approx(0.8, abs=0.05)


def test_factor_vae_normalises_by_the_global_std():
    # Noisy codes (noise sd 0.3 in factor units) with dimension 1 scaled by 100:
    # only after dividing by the global std does the fixed factor's dimension
    # (variance 0.09 vs >= 0.75 for the others, in factor units) win every vote.
    noise = np.random.default_rng(5)

    def scaled(f):
        codes = f + 0.3 * noise.normal(size=f.shape)
        codes[:, 1] *= 100.0
        return codes
    result = factor_vae.compute(scaled, SMALL, np.random.default_rng(0), **FAST[factor_vae])
    assert result["eval_accuracy"] >= 0.98


def test_factor_vae_from_points_hand_example():
    # dim 0: votes {0: 1, 1: 1} -> factor 0 (tie: lowest); dim 1: {1: 2, 0: 1} -> 1.
    result = factor_vae.factor_vae_from_points(
        [0, 0, 1, 1, 1], [0, 1, 1, 1, 0], [0, 1, 2], [0, 0, 0])
    # Train: 1 + 2 of 5 right. Eval: dim 1 predicts 1 (wrong); dim 2 never
    # voted in training, so it predicts nothing (wrong, not factor 0).
    assert result == {"train_accuracy": pytest.approx(0.6), "eval_accuracy": pytest.approx(1 / 3)}


# ----------------------------------------------------------------------- DCI
@pytest.mark.parametrize("kind", PERFECT)
def test_dci_perfect_codes(kind):
    # Bound 1 for all: each factor is a threshold function of one code
    # dimension, so trees reach accuracy 1 splitting on that dimension only
    # and R is a (permuted) diagonal: rows and columns have entropy 0.
    result = score(dci, kind)
    assert result["disentanglement"] >= 0.95
    assert result["completeness"] >= 0.95
    assert result["informativeness_test"] >= 0.99


def test_dci_random_codes():
    # Importance spreads evenly over dimensions and factors: entropies ~1.
    # Informativeness bottoms out at chance, mean_j 1/K_j, not at 0.
    result = score(dci, "random")
    assert result["disentanglement"] < 0.05
    assert result["completeness"] < 0.05
    assert result["informativeness_test"] <= np.mean(1 / np.array(DCI_SIZES)) + 0.08


def test_dci_constant_codes():
    # No split is possible: R = 0, treated as uniform, so D = C = 0 exactly;
    # the classifiers predict the majority class (chance-level accuracy).
    result = score(dci, "constant")
    assert result["disentanglement"] == 0.0 and result["completeness"] == 0.0
    assert result["informativeness_test"] <= np.mean(1 / np.array(DCI_SIZES)) + 0.08


def test_disentanglement_completeness_hand_examples():
    assert disentanglement_completeness(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert disentanglement_completeness(np.ones((3, 3))) == pytest.approx((0.0, 0.0))
    # One dimension holds both factors: not disentangled, but complete.
    assert disentanglement_completeness(np.array([[1.0, 1.0], [0.0, 0.0]])) == pytest.approx((0.0, 1.0))
    # rho = (0.9, 0.1): dim 0 is pure (1), dim 1 split evenly (0) -> D = 0.9;
    # factor 0 is spread as (18/19, 1/19) over the dims, factor 1 is pure.
    h2 = -(18 / 19 * np.log2(18 / 19) + 1 / 19 * np.log2(1 / 19))
    expected = (0.9, ((1 - h2) + 1.0) / 2)
    assert disentanglement_completeness(np.array([[0.9, 0.0], [0.05, 0.05]])) == pytest.approx(expected)


def dci_reference_case(kind: str, n_train: int = 300, n_test: int = 150, seed: int = 0):
    """Codes of DCI_SIZES factors: a perfect code, the same code rotated (every
    dimension mixes two factors), or the perfect code plus two pure-noise dims."""
    gen = np.random.default_rng(seed)
    f_train = uniform_factors(DCI_SIZES, n_train, gen)
    f_test = uniform_factors(DCI_SIZES, n_test, gen)
    c, s = np.cos(0.6), np.sin(0.6)
    rotation = np.kron(np.eye(2), np.array([[c, -s], [s, c]]))  # two 2-D rotations
    maps = {
        "perfect": lambda f: f.astype(float),
        "rotated": lambda f: f @ rotation,
        "noise_dims": lambda f: np.hstack([f, gen.normal(size=(len(f), 2))]),
    }
    return maps[kind](f_train), f_train, maps[kind](f_test), f_test


def serial_dci(codes_train, factors_train, codes_test, factors_test, random_state, n_estimators):
    """The reference definition as a plain loop: one classifier per factor, in order."""
    importance, acc_train, acc_test = [], [], []
    for j in range(factors_train.shape[1]):
        model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=random_state)
        model.fit(codes_train, factors_train[:, j])
        importance.append(np.abs(model.feature_importances_))
        acc_train.append(model.score(codes_train, factors_train[:, j]))
        acc_test.append(model.score(codes_test, factors_test[:, j]))
    d, c = disentanglement_completeness(np.array(importance).T)
    return {"disentanglement": d, "completeness": c,
            "informativeness_train": float(np.mean(acc_train)),
            "informativeness_test": float(np.mean(acc_test))}


@pytest.mark.parametrize("kind", ["perfect", "rotated", "noise_dims"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_dci_threaded_fits_equal_the_serial_reference(kind, n_jobs):
    # Each factor's fit is the same estimator with the same seed whichever
    # thread runs it, so the scores equal a serial loop's exactly (tolerance 0).
    arrays = dci_reference_case(kind)
    expected = serial_dci(*arrays, random_state=3, n_estimators=10)
    assert dci.dci_from_arrays(*arrays, random_state=3, n_estimators=10, n_jobs=n_jobs) == expected
    if kind == "rotated":  # the rotation mixes factors: below a perfect code
        perfect = dci.dci_from_arrays(*dci_reference_case("perfect"), n_estimators=10)
        assert expected["disentanglement"] < perfect["disentanglement"]


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True])
def test_dci_rejects_bad_n_jobs(n_jobs):
    with pytest.raises(ValueError, match="n_jobs"):
        dci.dci_from_arrays(*dci_reference_case("perfect", 20, 10), n_jobs=n_jobs)


# ----------------------------------------------------------------------- SAP
class Recorder:
    """A codes_fn that remembers the factors it was asked to encode."""

    def __init__(self, codes_fn):
        self.codes_fn, self.calls = codes_fn, []

    def __call__(self, factors):
        self.calls.append(factors.copy())
        return self.codes_fn(factors)


def sap_bound(kind: str, sizes, factors_train, factors_test) -> float:
    # The SAP classifier sees ONE dimension: a one-vs-rest LinearSVC cuts the
    # line into intervals and only the extreme values of an ordered factor are
    # linearly separable from the rest, so even the factor's own dimension has
    # accuracy well below 1 for K > 3 (and C=0.01, a penalty per sample, makes
    # it depend on the code's scale and on num_train); an uninformative
    # runner-up still gets chance, ~1/K. The best a code that puts factor j
    # alone in one dimension can score is therefore
    # mean_j (accuracy of the protocol's classifier on that dimension - 1/K_j),
    # computed here on exactly the sample the metric drew (the accuracy varies
    # by several points between samples, so an independent sample won't do).
    gaps = []
    for j, k in enumerate(sizes):
        levels = code_levels(kind, j, k)
        y_train, y_test = factors_train[:, j], factors_test[:, j]
        model = LinearSVC(C=0.01, class_weight="balanced", random_state=0)
        model.fit(levels[y_train][:, None], y_train)
        gaps.append(model.score(levels[y_test][:, None], y_test) - 1 / k)
    return float(np.mean(gaps))


@pytest.mark.parametrize("kind", PERFECT)
def test_sap_perfect_codes_reach_single_dimension_bound(kind):
    recorder = Recorder(codes_fn_for(kind, len(SMALL)))
    value = sap.compute(recorder, SMALL, np.random.default_rng(0), **FAST[sap])["sap"]
    factors_train, factors_test = recorder.calls  # one call per split (< CHUNK_ROWS rows)
    bound = sap_bound(kind, SMALL, factors_train, factors_test)
    assert 0.25 < bound < 0.5  # far from 1 even for a perfect code
    # The runner-up is an uninformative dimension: chance plus sampling noise
    # (binomial sd ~0.013 at 1000 test points).
    assert 0.85 * bound <= value <= bound + 0.02


def test_sap_from_arrays_takes_the_runner_up():
    # A binary factor in dims 0 and 1 (both perfect) and a constant dim 2: the
    # gap between the two best dimensions is 0 (not top minus worst, 0.5).
    factor = np.arange(200)[:, None] % 2
    codes = np.hstack([factor, factor, np.zeros_like(factor)]).astype(float)
    assert sap.sap_from_arrays(codes, factor, codes, factor)["sap"] == 0.0
    # Dropping the copy leaves a gap of 1 - 0.5 (constant dim: one class).
    assert sap.sap_from_arrays(codes[:, [0, 2]], factor, codes[:, [0, 2]], factor)["sap"] == 0.5


def test_sap_uninformative_codes_score_zero():
    # Random: every dimension is at chance; the gap is sampling noise
    # (binomial sd ~0.013 at 1000 test points).
    assert 0.0 <= score(sap, "random")["sap"] < 0.04
    # Constant: every dimension gets the same classifier and the same score.
    assert score(sap, "constant")["sap"] == 0.0


# --------------------------------------------------- Modularity/Explicitness
@pytest.mark.parametrize("kind", PERFECT)
def test_modularity_explicitness_perfect_codes(kind):
    # Modularity bound 1: each dimension's MI with its own factor is the binned
    # entropy (>= ln 3 = 1.1 nats) and with the others only the plug-in bias
    # (< 0.05 nats at n=2000), so delta_i < (0.05/1.1)**2 < 0.003.
    # Explicitness bound 1: a softmax over logits linear in the factor's own
    # dimension can rank each value's interval above the others (AUC 1).
    result = score(modularity, kind)
    assert result["modularity"] >= 0.99
    assert result["explicitness_test"] >= 0.97


# A per-dimension affine map with positive scales spanning 1e-2..1e2 and large shifts.
AFFINE_SCALE = np.array([100.0, 0.01, 3.0, 0.5, 20.0])
AFFINE_SHIFT = np.array([5.0, -3.0, 0.0, 1000.0, -7.0])


def affine(codes: np.ndarray) -> np.ndarray:
    return codes * AFFINE_SCALE + AFFINE_SHIFT


def uniform_factors(sizes, n: int, gen: np.random.Generator) -> np.ndarray:
    return gen.integers(0, np.asarray(sizes), size=(n, len(sizes)))


def noisy_perfect_split(sizes, n_train=2000, n_test=1000, seed=0):
    """Factor indices + N(0, 0.01^2) noise as codes, a train and a test split."""
    gen = np.random.default_rng(seed)
    f_train, f_test = uniform_factors(sizes, n_train, gen), uniform_factors(sizes, n_test, gen)
    return (f_train + 0.01 * gen.normal(size=f_train.shape), f_train,
            f_test + 0.01 * gen.normal(size=f_test.shape), f_test)


@pytest.mark.parametrize("rescaled", [False, True], ids=["raw", "rescaled"])
def test_explicitness_of_noisy_perfect_code(rescaled):
    # Explicitness bound 1 (see above); with the codes standardised as in the
    # reference, the units of a dimension cannot matter (unscaled, the
    # rescaled copy scored 0.80: the L2 penalty crushed the 0.01-scaled dim).
    c_train, f_train, c_test, f_test = noisy_perfect_split(SMALL)
    if rescaled:
        c_train, c_test = affine(c_train), affine(c_test)
    result = modularity.modularity_explicitness_from_arrays(c_train, f_train, c_test, f_test)
    assert result["explicitness_train"] >= 0.98
    assert result["explicitness_test"] >= 0.98


@pytest.mark.parametrize("kind", ["entangled", "random"])
def test_explicitness_is_invariant_to_positive_affine_maps(kind):
    # Standardising with the training mean/std removes any per-dimension
    # x -> a*x + b (a > 0), so the classifier and every AUC are unchanged. The
    # codes here are imperfect, so the scores are not pinned at 1 or 0.5.
    gen = np.random.default_rng(3)
    f_train, f_test = uniform_factors(SMALL, 1000, gen), uniform_factors(SMALL, 500, gen)
    fn = codes_fn_for(kind, len(SMALL))
    c_train, c_test = fn(f_train), fn(f_test)
    plain = modularity.modularity_explicitness_from_arrays(c_train, f_train, c_test, f_test)
    moved = modularity.modularity_explicitness_from_arrays(affine(c_train), f_train,
                                                           affine(c_test), f_test)
    for key in ("explicitness_train", "explicitness_test"):
        assert moved[key] == pytest.approx(plain[key], abs=1e-6)


def test_explicitness_ignores_a_constant_dimension():
    # A dimension constant on the training codes has std 0: it is centred, not
    # divided (no NaN), and adds nothing to a perfect code's explicitness.
    c_train, f_train, c_test, f_test = noisy_perfect_split(SMALL)
    base = modularity.modularity_explicitness_from_arrays(c_train, f_train, c_test, f_test)
    pad = lambda c: np.hstack([c, np.full((len(c), 1), 3.5)])  # noqa: E731
    padded = modularity.modularity_explicitness_from_arrays(pad(c_train), f_train,
                                                            pad(c_test), f_test)
    assert np.isfinite(padded["explicitness_test"])
    assert padded["explicitness_test"] == pytest.approx(base["explicitness_test"], abs=1e-6)


def modularity_bias_floor(sizes) -> float:
    # Modularity uses unnormalised MI. For a code independent of the factors
    # each MI is only the plug-in bias, ~(B-1)(K_j-1)/(2n) nats (Miller-Madow),
    # i.e. proportional to K_j - 1: the factor with most values dominates every
    # row, so an uninformative code does NOT score ~0 but about
    # 1 - sum_{j != max} (K_j-1)^2 / ((K_max-1)^2 (F-1)).
    b = np.asarray(sizes, dtype=float) - 1
    return float(1 - (np.sum(b**2) - b.max() ** 2) / (b.max() ** 2 * (len(b) - 1)))


def test_modularity_explicitness_random_codes():
    result = score(modularity, "random")
    floor = modularity_bias_floor(SMALL)  # 0.608 for SMALL
    assert abs(result["modularity"] - floor) < 0.15
    assert result["modularity"] < score(modularity, "identity")["modularity"] - 0.3
    assert abs(result["explicitness_test"] - 0.5) < 0.05  # AUC chance


def test_modularity_explicitness_constant_codes():
    # One bin: no MI anywhere -> 0; constant probabilities -> AUC exactly 0.5.
    assert score(modularity, "constant") == {
        "modularity": 0.0, "explicitness_train": 0.5, "explicitness_test": 0.5}


def test_modularity_from_mi_hand_examples():
    assert modularity_from_mi(np.eye(3)) == pytest.approx(1.0)
    # delta = 1**2 / (2**2 * (3 - 1)) = 0.125
    assert modularity_from_mi(np.array([[2.0, 1.0, 0.0]])) == pytest.approx(0.875)
    assert modularity_from_mi(np.zeros((2, 3))) == 0.0


# ------------------------------------------------------------ all the metrics
ALL = list(FAST)
IDS = [m.__name__.rsplit(".", 1)[-1] for m in ALL]


def test_registry_lists_every_metric():
    assert METRICS == {name: m.compute for name, m in zip(IDS, ALL)}


@pytest.mark.parametrize("metric", ALL, ids=IDS)
def test_fixed_seed_is_deterministic(metric):
    first = score(metric, "entangled", seed=7)
    again = metric.compute(codes_fn_for("entangled", len(SIZES[metric])), SIZES[metric],
                           np.random.default_rng(7), **FAST[metric])
    assert again == first
    assert all(type(v) is float for v in again.values())
    # ... and the sample does depend on the seed.
    assert score(metric, "entangled", seed=8) != first


@pytest.mark.parametrize("metric", ALL, ids=IDS)
def test_num_train_must_be_positive(metric):
    with pytest.raises(ValueError, match="num_train"):
        metric.compute(codes_fn_for("identity", 5), SMALL, np.random.default_rng(0), num_train=0)


@pytest.mark.parametrize("metric, param, value", [
    (beta_vae, "batch_size", 0), (beta_vae, "num_eval", -1),
    (factor_vae, "batch_size", 1), (factor_vae, "num_variance_estimate", 1),
    (factor_vae, "prune_threshold", -0.1), (factor_vae, "prune_threshold", "0.05"),
    (mig, "n_bins", 0), (mig, "num_train", 2.5),
    (dci, "num_test", 0), (sap, "num_test", True), (modularity, "n_bins", 0),
])
def test_invalid_parameters_are_named(metric, param, value):
    with pytest.raises(ValueError, match=param):
        metric.compute(codes_fn_for("identity", 5), SMALL, np.random.default_rng(0), **{param: value})


@pytest.mark.parametrize("sizes, match", [((3, 1), r"factor_sizes\[1\]"), ((), "factor_sizes")])
def test_invalid_factor_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        mig.compute(codes_fn_for("identity", 2), sizes, np.random.default_rng(0))


@pytest.mark.parametrize("metric", ALL, ids=IDS)
def test_rng_must_be_a_generator(metric):
    with pytest.raises(TypeError, match="rng"):
        metric.compute(codes_fn_for("identity", 5), SMALL, 0)


def test_bad_codes_are_reported():
    with pytest.raises(ValueError, match="codes_fn"):
        mig.compute(lambda f: f[:, 0].astype(float), SMALL, np.random.default_rng(0), num_train=10)
    with pytest.raises(ValueError, match="same n"):
        mig.mig_from_arrays(np.zeros((10, 2)), np.zeros((9, 2), dtype=int))
