"""The robustness stage (vaebench.evaluate.robustness): curve maths, closed forms,
and an end-to-end run on tiny trained models."""
import csv
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from vaebench import cli, mirror
from vaebench.config import ConfigError, load_config
from vaebench.data import load_prepared
from vaebench.evaluate.attacks import input_differentiable
from vaebench.corruptions import CORRUPTIONS
from vaebench.evaluate.robustness import (corruption_curves, displacement, evaluate_model,
                                          normalised_auc, random_test_subset, reference)
from vaebench.models import build_model, validate_model_config
from vaebench.stage import stream_seed
from vaebench.train import train_stage


def _model(family, latent=3, seed=0):
    torch.manual_seed(seed)
    cfg = validate_model_config("m", {"family": family, "dataset": "mnist", "backbone": "mlp",
                                      "latent_dim": latent, "hidden": [16]})
    return build_model(cfg, (1, 28, 28)).eval()


def test_normalised_auc_is_the_mean_height_of_the_curve():
    assert normalised_auc([0, 0.5, 2], [3, 3, 3]) == pytest.approx(3)
    assert normalised_auc([0, 1, 2], [0, 1, 2]) == pytest.approx(1)          # y = l on [0, 2]
    # trapezoid on uneven levels: (0.5 * (0 + 1) * 1 + 0.5 * (1 + 4) * 3) / 4
    assert normalised_auc([0, 1, 4], [0, 1, 4]) == pytest.approx(8 / 4)
    assert normalised_auc([0], [7.0]) == 7.0


def test_test_subset_is_a_seeded_random_draw_not_the_sorted_head():
    # the draw does not rely on prepare's random row order: on a sorted test set a leading
    # slice would hold one class, the seeded draw still covers every class
    labels = torch.arange(1000).div(100, rounding_mode="floor")[:, None]     # 10 sorted classes
    data = SimpleNamespace(x_test=torch.arange(1000.0), factors_test=labels,
                           device=torch.device("cpu"),
                           test_inputs=lambda binarize: torch.arange(1000.0))
    x, f = random_test_subset(data, 200, True, seed=0)
    assert torch.equal(f[:, 0], labels[x.long(), 0]) and len(x.unique()) == 200
    assert len(f.unique()) == 10 and f[:, 0].bincount().min() >= 8    # every class present
    assert torch.equal(random_test_subset(data, 200, True, seed=0)[0], x)
    assert not torch.equal(random_test_subset(data, 200, True, seed=1)[0], x)
    assert len(random_test_subset(data, None, True, seed=0)[0]) == 1000


@pytest.mark.parametrize("family", ["ae", "vae"])
def test_zero_corruption_gives_zero_displacement(family):
    model = _model(family)
    x = torch.bernoulli(torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    expected = {"recon_err", "code_dist"} | ({"kl", "delta_elbo"} if family == "vae" else set())
    # computed: an unchanged copy of the input moves nothing
    ref = reference(model, x, seed=3)
    per, codes = displacement(model, ref, x.clone())
    assert set(per) == expected and torch.equal(codes, ref.r)
    for metric in expected - {"recon_err"}:
        assert torch.equal(per[metric], torch.zeros(40)), metric
    torch.testing.assert_close(per["recon_err"], (ref.recon - x).pow(2).flatten(1).sum(1))
    # the curves: level 0 is the clean point, a positive level moves the codes
    curves, clean, skipped, points = corruption_curves(
        model, x, {k: [0.0, 0.3] for k in ("masking", "gaussian", "salt_pepper")},
        seed=0, batch_size=16)
    for kind in ("masking", "gaussian", "salt_pepper"):
        assert {m for k, m in curves if k == kind} == expected
        for metric in expected - {"recon_err"}:
            level0, level1 = curves[(kind, metric)]
            assert level0 == 0.0 and level1 != 0.0
        assert curves[(kind, "recon_err")][0] == pytest.approx(clean["recon_err_clean"])
        # per-point errors of the positive level: 40 of them, their mean is the curve's
        assert list(points[kind]) == ["0.3"] and len(points[kind]["0.3"]) == 40
        assert np.mean(points[kind]["0.3"]) == pytest.approx(curves[(kind, "recon_err")][1],
                                                             rel=1e-4)
    assert np.mean(points["clean"]) == pytest.approx(clean["recon_err_clean"], rel=1e-4)
    assert clean["recon_err_clean_stderr"] == pytest.approx(
        np.std(points["clean"], ddof=1) / np.sqrt(40), rel=1e-4)
    assert ("elbo_clean" in clean) == (family == "vae") and skipped == {}


def test_kl_displacement_equals_the_closed_form_gaussian_kl():
    # Masking at level 1 zeroes every pixel, so q(z|x~) = q(z|0) = N(b_mu, exp(b_lv)) exactly,
    # and q(z|x) = N(W_mu x + b_mu, exp(W_lv x + b_lv)): a hand-computable KL per example.
    model = _model("vae", latent=2)
    lin = nn.Linear(784, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(4, 784, generator=torch.Generator().manual_seed(1)) * 0.02)
        lin.bias.copy_(torch.tensor([0.3, -0.2, 0.1, -0.4]))
    model.encoder = nn.Sequential(nn.Flatten(), lin)
    x = torch.bernoulli(torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(2)))
    curves, _, _, _ = corruption_curves(model, x, {"masking": [0.0, 1.0]}, seed=0, batch_size=4)

    W, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    h = x.flatten(1).double().numpy() @ W.T + b                      # (B, 4): mu, logvar of q(z|x)
    m0, lv0 = h[:, :2], h[:, 2:]
    m1, lv1 = b[:2], b[2:]                                            # q(z|0)
    # KL(N(m1, v1) || N(m0, v0)) = 1/2 sum [log v0/v1 + (v1 + (m1 - m0)^2) / v0 - 1]
    kl = 0.5 * (lv0 - lv1 + (np.exp(lv1) + (m1 - m0) ** 2) / np.exp(lv0) - 1).sum(1)
    assert curves[("masking", "kl")][1] == pytest.approx(kl.mean(), rel=1e-5)
    code = np.linalg.norm(m1 - m0, axis=1) / np.linalg.norm(m0, axis=1)
    assert curves[("masking", "code_dist")][1] == pytest.approx(code.mean(), rel=1e-5)


def test_per_point_errors_pair_up_across_models(tiny_data, tiny_params):
    """Every model of a dataset is scored on the same test points, in the same order,
    under the same corruption draws: two models' stored per-point errors equal the
    errors recomputed on that one subset (what the claims' paired SEs rely on)."""
    rcfg = load_config(tiny_params()).section("robustness")
    data = load_prepared(tiny_data / "mnist")
    x, _ = random_test_subset(data, rcfg.n_test, True, rcfg.seed)
    assert len(x) == rcfg.n_test <= rcfg.batch_size                   # one batch: one draw stream
    kind, level = "masking", rcfg.corruptions["masking"][-1]
    gen = torch.Generator().manual_seed(stream_seed(rcfg.seed, kind))
    x_tilde = CORRUPTIONS[kind](x, level, gen)
    stored = {}
    for family in ("ae", "vae"):
        model = _model(family, seed=len(family))
        _, extra = evaluate_model(model, data, rcfg)
        points = extra["points"]
        with torch.no_grad():
            expected = {"clean": x, kind: x_tilde}
            for key, inputs in expected.items():
                err = (model.decode(model.represent(inputs)).mean - x).pow(2).flatten(1).sum(1)
                got = points["clean"] if key == "clean" else points[kind][f"{level:g}"]
                np.testing.assert_allclose(got, err.numpy(), rtol=1e-4)   # 5 significant digits
        assert set(points) == {"clean", *rcfg.corruptions}
        assert all(list(points[k]) == [f"{v:g}" for v in rcfg.corruptions[k][1:]]
                   for k in rcfg.corruptions)
        stored[family] = points
    assert stored["ae"]["clean"] != stored["vae"]["clean"]            # different models, same x


@pytest.fixture
def tiny_params(raw_params, write_params):
    """params.yaml on the tiny profile, CPU, with ``robustness`` keys overridden."""
    def write(**robustness):
        raw_params.update(profile="tiny", device="cpu")
        raw_params["robustness"].update(robustness)
        return write_params(raw_params)
    return write


@pytest.mark.parametrize("overlay,message", [
    ({"corruptions": {"blur": [0.0, 1.0]}}, "unknown corruption 'blur'"),
    ({"corruptions": {"masking": [0.1, 0.5]}}, "must start with 0"),
    ({"corruptions": {"masking": [0.0, 0.5, 0.3]}}, "strictly increasing"),
    ({"corruptions": {"masking": [0.0, 1.5]}}, "masking level"),
    ({"attack": {"eps": {"l3": [0.0, 1.0]}}},
     ").attack.eps.l3.[key]: Input should be 'l2' or 'linf'"),
    ({"attack": {"steps": -1}}, ").attack.steps: Input should be greater than or equal to 0"),
    ({"device": "tpu"}, ").device: Value error, 'tpu' is not a device"),
])
def test_bad_robustness_params_are_clear_errors(tiny_params, overlay, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(tiny_params(**overlay))


@pytest.mark.slow   # trains three models, then runs the stage
def test_stage_end_to_end_on_tiny_trained_models(tmp_path, mlflow_recorder, tiny_params,
                                                 tiny_data):
    logged = mlflow_recorder
    params = tiny_params()
    cfg = load_config(params)
    for name in ("mnist_ae", "mnist_vae"):
        train_stage(cfg, name, tiny_data / "mnist", tmp_path / "models" / name,
                    tmp_path / "train.json", tmp_path / "train_plots")
        out, plots = tmp_path / f"{name}.json", tmp_path / "plots" / name
        assert cli.main(["--params", str(params), "robustness", name, "--models",
                         str(tmp_path / "models" / name), "--data", str(tiny_data),
                         "--out", str(out), "--plots", str(plots)]) == 0
        result = json.loads(out.read_text())
        rc = cfg.section("robustness")
        metrics = {"recon_err", "code_dist", "probe_acc", "probe_acc_digit"}
        if name == "mnist_vae":
            metrics |= {"kl", "delta_elbo"}
        curves = {(k, m) for k in rc.corruptions for m in metrics}
        curves |= {(f"attack_{n}", t) for n in rc.attack.eps for t in ("latent", "output")}
        for group, metric in curves:
            key = f"auc_{group}_{metric}"
            assert np.isfinite(result[key]) and key in result["seeds"]["0"]
            with open(plots / f"{group}-{metric}.csv") as f:
                rows = list(csv.DictReader(f))
            levels = rc.corruptions.get(group) or rc.attack.eps[group.removeprefix("attack_")]
            assert [float(r["level"]) for r in rows] == levels
            assert [r["value"] for r in rows] == [r["seed0"] for r in rows]
            if metric in ("code_dist", "kl", "delta_elbo", "latent", "output"):
                assert float(rows[0]["value"]) == 0.0
        assert {p.name for p in plots.glob("*.csv")} == {f"{g}-{m}.csv" for g, m in curves}
        assert result["jacobian_frob"] > 0
        points = result["seeds"]["0"]["recon_err_points"]      # per seed only, not averaged
        assert "recon_err_points" not in result and len(points["clean"]) == result["n_test"]
        assert np.mean(points["clean"]) == pytest.approx(result["recon_err_clean"], rel=1e-4)
        assert result["jacobian_frob_sq"] >= result["jacobian_frob"] ** 2 * (1 - 1e-6)
        assert 0 <= result["probe_acc_clean"] <= 1
        assert result["latent_divergence"] == ("kl" if name == "mnist_vae" else "code_dist")
        assert ("elbo_clean" in result) == (name == "mnist_vae")
        assert set(result["time_s"]) == {"probe_fit", "corruptions", "jacobian", "attacks", "total",
                                          "total_cpu"}
        assert (result["model"], result["dataset"], result["profile"]) == (name, "mnist", "tiny")
        assert not logged                    # the stage writes files only; then mlflow-sync:
        mirror.robustness(out, tmp_path / "models" / name, plots)
        mirrored = [m for p, m in logged if p == "robust"]
        assert mirrored and mirrored[-1]["auc_masking_recon_err"] == result["auc_masking_recon_err"]
        assert ("artifact", "masking-recon_err.csv") in logged
        logged.clear()


def test_models_without_input_gradients_or_for_binary_inputs_only(tiny_data, tiny_params):
    model = _model("vae")

    class DetachedVAE(type(model)):
        """Like per-datapoint inference (SVI): q(z|x) has detached parameters, and x must
        be in the Bernoulli likelihood's support."""

        def encode(self, x):
            if not ((x == 0) | (x == 1)).all():
                raise ValueError("Expected value argument to be within the support (Boolean())")
            q = super().encode(x).base_dist
            return Independent(Normal(q.loc.detach(), q.scale.detach()), 1)

    detached = _model("vae")
    detached.__class__ = DetachedVAE
    data = load_prepared(tiny_data / "mnist")
    x = data.test_inputs(True)
    assert input_differentiable(model, x) and not input_differentiable(detached, x)
    metrics, extra = evaluate_model(detached, data, load_config(tiny_params()).section("robustness"))
    assert extra["info"]["encoder_differentiable"] is False
    assert "jacobian_frob" not in metrics and not any(k.startswith("auc_attack") for k in metrics)
    # Gaussian noise leaves the binary support: that process is skipped and reported
    assert set(extra["info"]["skipped_corruptions"]) == {"gaussian"}
    assert "support" in extra["info"]["skipped_corruptions"]["gaussian"]
    assert not any(k.startswith("auc_gaussian") for k in metrics)
    assert metrics["auc_masking_kl"] > 0 and metrics["auc_salt_pepper_kl"] > 0
