"""The ``disentangle@<model>`` stage: codes from drawn dSprites, traversals, params, end to end."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vaebench import cli
from vaebench.config import ConfigError, load_config
from vaebench.data import dsprites
from vaebench.devices import DeviceError
from vaebench.evaluate import disentangle as dis
from vaebench.evaluate.disentanglement import METRICS
from vaebench.evaluate.traversals import (
    latent_reference, save_traversal_figure, traversal_codes, traversal_images,
)
from vaebench.models import build_model, validate_model_config

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def small_model(family="vae", seed=0):
    torch.manual_seed(seed)
    cfg = validate_model_config("m", {"family": family, "dataset": "dsprites",
                                      "backbone": "conv64", "latent_dim": 6})
    return build_model(cfg, (1, 64, 64)).eval()


# --- codes_fn -------------------------------------------------------------------------

def test_codes_fn_encodes_the_drawn_images_of_the_given_factors_in_order():
    model = small_model()
    factors = dsprites.index_to_factors(np.random.default_rng(0).choice(dsprites.N_IMAGES, 7))
    codes_fn = dis.make_codes_fn(model, dsprites.render, "mean", "cpu", batch_size=3)
    codes = codes_fn(factors)
    assert codes.shape == (7, 6)
    with torch.no_grad():  # the same images encoded by hand, one at a time
        direct = torch.cat([model.represent(torch.from_numpy(dsprites.render(f[None])).float()[:, None])
                            for f in factors]).numpy()
    np.testing.assert_allclose(codes, direct, rtol=1e-5, atol=1e-6)
    perm = np.array([3, 0, 6, 1, 5, 2, 4])
    np.testing.assert_allclose(codes_fn(factors[perm]), codes[perm], rtol=1e-5, atol=1e-6)
    assert codes_fn(factors[:0]).shape == (0, 6)


def test_mean_codes_are_kept_per_grid_image_and_sampled_ones_never():
    """Each grid image is drawn and encoded once per model; the codes equal the
    uncached ones, in the order asked, duplicates included."""
    model = small_model()
    drawn = []

    def images(f):
        drawn.extend(dsprites.factors_to_index(f).tolist())
        return dsprites.render(f)
    rng = np.random.default_rng(1)
    factors = dsprites.index_to_factors(rng.choice(50, 40))           # many repeats
    sizes = dsprites.FACTOR_SIZES
    cached = dis.make_codes_fn(model, images, "mean", "cpu", 16, factor_sizes=sizes)
    plain = dis.make_codes_fn(model, dsprites.render, "mean", "cpu", 16)
    np.testing.assert_allclose(cached(factors), plain(factors), rtol=1e-5, atol=1e-6)
    unique = set(dsprites.factors_to_index(factors).tolist())
    assert sorted(drawn) == sorted(unique)                           # each image once
    more = dsprites.index_to_factors(rng.choice(60, 30))
    np.testing.assert_allclose(cached(more), plain(more), rtol=1e-5, atol=1e-6)
    assert sorted(drawn) == sorted(unique | set(dsprites.factors_to_index(more).tolist()))
    assert cached(factors[:0]).shape == (0, 6)
    drawn.clear()
    sampled = dis.make_codes_fn(model, images, "sampled", "cpu", 16, factor_sizes=sizes)
    sampled(factors)
    assert len(drawn) == len(factors)                                # a fresh draw each time


def test_codes_fn_through_images_uses_the_procedural_grid_without_the_original(tmp_path):
    images = dsprites.Images(tmp_path)       # no original file here: rendered
    assert images.source == "procedural"
    f = np.array([[0, 5, 0, 16, 16], [2, 0, 10, 3, 30]])
    np.testing.assert_array_equal(images(f), dsprites.render(f))
    codes = dis.make_codes_fn(small_model(), images, "mean", "cpu", 1000)(f)
    assert codes.shape == (2, 6) and np.isfinite(codes).all()


def test_sampled_codes_scatter_around_the_mean_codes():
    model = small_model()
    f = np.repeat(np.array([[1, 3, 5, 10, 20]]), 400, axis=0)   # one image, 400 times
    mean = dis.make_codes_fn(model, dsprites.render, "mean", "cpu", 1000)(f)
    torch.manual_seed(0)
    sampled = dis.make_codes_fn(model, dsprites.render, "sampled", "cpu", 1000)(f)
    with torch.no_grad():
        q = model.encode(torch.from_numpy(dsprites.render(f[:1])).float()[:, None])
    assert np.ptp(mean, axis=0).max() < 1e-5          # mean codes are deterministic
    np.testing.assert_allclose(sampled.std(0), q.stddev[0].numpy(), rtol=0.2)
    np.testing.assert_allclose(sampled.mean(0), mean[0], atol=4 * q.stddev[0].max().item() / 20)


def test_run_metrics_gives_every_metric_and_is_deterministic_for_a_seed(tiny_config):
    section = tiny_config.section("disentangle")
    codes_fn = lambda f: f.astype(float) + 0.01 * np.arange(5)   # noqa: E731 -- a perfect code
    a = dis.run_metrics(codes_fn, dsprites.FACTOR_SIZES, section.metrics, seed=3)
    b = dis.run_metrics(codes_fn, dsprites.FACTOR_SIZES, section.metrics, seed=3)
    c = dis.run_metrics(codes_fn, dsprites.FACTOR_SIZES, section.metrics, seed=4)
    assert set(a) == set(METRICS)
    strip = lambda r: {m: {k: v for k, v in d.items() if k not in ("time_s", "cpu_s")}  # noqa: E731
                       for m, d in r.items()}
    assert strip(a) == strip(b) and strip(a) != strip(c)
    # a perfect code: far above chance (1/5 votes; MIG 0) even at tiny sizes
    assert a["factor_vae"]["eval_accuracy"] >= 0.8 and a["mig"]["mig"] > 0.3
    assert all(r["time_s"] >= 0 and r["cpu_s"] >= 0 for r in a.values())


def test_metric_params_are_exactly_the_keyword_arguments_of_each_metric():
    from vaebench.sections.disentangle import DisentangleMetricsConfig
    for name, compute in METRICS.items():
        fields = set(DisentangleMetricsConfig.model_fields[name].annotation.model_fields)
        kwargs = {p.name for p in inspect.signature(compute).parameters.values()
                  if p.kind is p.KEYWORD_ONLY}
        assert fields == kwargs, name


# --- traversals -----------------------------------------------------------------------

def test_traversal_codes_move_one_dimension_over_the_range():
    z = torch.tensor([0.5, -1.0, 2.0])
    centre, scale = torch.tensor([0.0, 1.0, -1.0]), torch.tensor([1.0, 2.0, 0.5])
    codes = traversal_codes(z, centre, scale, n_steps=5, limit=3.0)       # (D, S, D)
    assert codes.shape == (3, 5, 3)
    for d in range(3):
        others = [i for i in range(3) if i != d]
        assert torch.equal(codes[d][:, others], z[others].expand(5, 2))
        torch.testing.assert_close(codes[d, :, d], centre[d] + scale[d] * torch.linspace(-3, 3, 5))


def test_latent_reference_prefers_the_prior_and_falls_back_to_the_codes():
    codes = torch.tensor([[1.0, 10.0], [3.0, 14.0]])
    centre, scale, where = latent_reference(small_model("vae").prior(), codes)
    assert where == "prior" and torch.equal(centre, torch.zeros(6)) and torch.equal(scale, torch.ones(6))
    centre, scale, where = latent_reference(None, codes)          # no prior (e.g. VQ models)
    assert where == "codes"
    torch.testing.assert_close(centre, torch.tensor([2.0, 12.0]))
    torch.testing.assert_close(scale, codes.std(0))


@pytest.mark.parametrize("family", ["vae", "ae"])
def test_traversal_figure_is_written(tmp_path, family):
    import matplotlib.image
    model = small_model(family)
    x = torch.from_numpy(dsprites.render(np.array([[0, 5, 0, 5, 5], [2, 3, 9, 25, 20]]))).float()[:, None]
    with torch.no_grad():
        reference = model.represent(x)
    grid, info = traversal_images(model, x, n_steps=4, limit=3.0, reference_codes=reference)
    assert grid.shape == (2, 6, 4, 64, 64) and grid.min() >= 0 and grid.max() <= 1
    assert info["reference"] == ("prior" if family == "vae" else "codes")
    path = tmp_path / "traversals.png"
    save_traversal_figure(path, x[:, 0].numpy(), grid, 3.0, "t")
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200


SEC = r"disentangle \(profile \w+\)\."   # how a key of the section is named in errors


# --- params ---------------------------------------------------------------------------

@pytest.mark.parametrize("mutate,pattern", [
    (lambda p: p["disentangle"].update(representation="foo"),
     SEC + r"representation: .*'mean' or 'sampled' \(got 'foo'\)"),
    (lambda p: p["disentangle"]["metrics"]["beta_vae"].update(num_train=0),
     SEC + r"metrics.beta_vae.num_train: .*greater than 0"),
    (lambda p: p["profiles"]["quick"]["disentangle"]["metrics"]["dci"].update(num_test=-5),
     r"disentangle \(profile quick\)\.metrics.dci.num_test: .*greater than 0"),
    (lambda p: p["disentangle"]["metrics"]["factor_vae"].update(batch_size=1),
     SEC + r"metrics.factor_vae.batch_size: .*greater than or equal to 2"),
    (lambda p: p["disentangle"]["metrics"]["mig"].update(bins=20),
     SEC + r"metrics.mig.bins: Extra inputs"),
    (lambda p: p["disentangle"].update(device="gpu"), SEC + r"device: .*not a device"),
    (lambda p: p["disentangle"]["attributes"]["items"].append(
        {"name": "x", "factor": "colour", "source": 0, "target": 1}),
     r"factor 'colour' is not a factor of 'dsprites'.*valid: \['shape'"),
    (lambda p: p["disentangle"]["attributes"]["items"].append(
        {"name": "x", "factor": "scale", "source": 0, "target": 6}),
     r"target 6 is out of range for factor 'scale'.*0..5"),
    (lambda p: p["disentangle"]["attributes"]["items"].append(
        {"name": "x", "factor": "scale", "source": 2, "target": 2}),
     SEC + r"attributes.items.4: .*source and target must differ \(both 2\)"),
    (lambda p: p["evaluate"]["disentangle"].append("mnist_vae"),
     r"evaluate.disentangle: model 'mnist_vae' is trained on 'mnist', which has no "
     r"ground-truth factors"),
    (lambda p: p["evaluate"]["disentangle"].append("nope"),
     r"evaluate.disentangle: 'nope' is not in models"),
])
def test_bad_disentangle_params_are_clear_errors(raw_params, write_params, mutate, pattern):
    mutate(raw_params)
    with pytest.raises(ConfigError, match=pattern):
        load_config(write_params(raw_params))


def test_paper_profile_is_the_protocol_on_the_full_dataset(raw_params, write_params):
    cfg = load_config(write_params(raw_params), profile="paper")
    m = cfg.section("disentangle").metrics
    assert cfg.datasets["dsprites"].n_train is None        # all 737,280 images
    assert (m.beta_vae.batch_size, m.beta_vae.num_train, m.beta_vae.num_eval) == (64, 10000, 5000)
    assert (m.factor_vae.num_train, m.factor_vae.num_eval, m.factor_vae.num_variance_estimate,
            m.factor_vae.prune_threshold) == (10000, 5000, 10000, 0.05)
    assert (m.mig.num_train, m.mig.n_bins) == (10000, 20)
    assert (m.dci.num_train, m.dci.num_test, m.dci.n_estimators) == (10000, 5000, 100)
    assert (m.sap.num_train, m.sap.num_test, m.sap.svm_c) == (10000, 5000, 0.01)
    assert (m.modularity.num_train, m.modularity.num_test, m.modularity.n_bins) == (10000, 5000, 20)
    assert cfg.section("disentangle").representation == "mean"
    quick = load_config(write_params(raw_params), profile="quick").section("disentangle").metrics
    assert quick.beta_vae.num_train < m.beta_vae.num_train and quick.dci.num_train < m.dci.num_train


# --- the stage end to end -------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """A dSprites VAE trained on the tiny profile (two seeds), and its config."""
    from vaebench.train import train_stage
    tmp = tmp_path_factory.mktemp("disentangle")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"], raw["seeds"] = "tiny", [0, 1]
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp / "params.yaml")
    train_stage(cfg, "dsprites_vae", tiny_data / "dsprites", tmp / "models" / "dsprites_vae",
                tmp / "train.json", tmp / "plots")
    return cfg, tmp


@pytest.mark.slow   # trains a model (module fixture `trained`)
def test_stage_runs_end_to_end_and_writes_every_metric(trained, tiny_data, tmp_path):
    cfg, tmp = trained
    out, figures = tmp_path / "disentangle" / "dsprites_vae.json", tmp_path / "fig"
    dis.disentangle_stage(cfg, "dsprites_vae", tmp / "models" / "dsprites_vae", tiny_data,
                          ROOT / "data" / "raw", out, figures)
    result = json.loads(out.read_text())
    assert result["model"] == "dsprites_vae" and result["representation"] == "mean"
    assert set(result["seeds"]) == {"0", "1"}
    expected_keys = {"beta_vae": "eval_accuracy", "factor_vae": "eval_accuracy", "mig": "mig",
                     "dci": "disentanglement", "sap": "sap", "modularity": "modularity"}
    for per in (result, *result["seeds"].values()):
        for metric, key in expected_keys.items():
            assert key in per[metric] and "time_s" in per[metric] and "cpu_s" in per[metric]
            assert np.isfinite(per[metric][key])
        items = [a.name for a in cfg.section("disentangle").attributes.items]
        assert set(per["attributes"]) == set(items)
        for a in per["attributes"].values():
            assert 0 <= a["hit_rate"] <= 1 and 0 <= a["baseline_hit_rate"] <= 1
    assert "beta_vae_ci95" not in result  # (mean keys live inside each metric's block)
    assert "eval_accuracy_ci95" in result["beta_vae"]          # two seeds: an interval
    assert set(result["classifier"]["accuracy"]) == set(dsprites.FACTOR_NAMES)
    assert sorted(p.name for p in figures.iterdir()) == ["attribute_vectors.png", "traversals.png"]

    from mlflow.tracking import MlflowClient

    from vaebench import mirror
    mirror.disentangle(out, tmp / "models" / "dsprites_vae", figures)   # as mlflow-sync does
    client = MlflowClient()
    run = client.search_runs([client.get_experiment_by_name("vaebench").experiment_id],
                             filter_string="tags.model = 'dsprites_vae' and tags.seed = '0'")[0]
    assert run.data.metrics["disent/mig/mig"] == pytest.approx(result["seeds"]["0"]["mig"]["mig"])
    assert "disent/classifier/accuracy/shape" in run.data.metrics
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "figures/disentangle")]
    assert sorted(artifacts) == ["figures/disentangle/attribute_vectors.png",
                                 "figures/disentangle/traversals.png"]


@pytest.mark.slow   # trains a model (module fixture `trained`)
def test_stage_refuses_a_model_not_listed_and_an_absent_device(trained, tiny_data, tmp_path):
    cfg, tmp = trained
    args = (tmp / "models" / "dsprites_vae", tiny_data, ROOT / "data" / "raw",
            tmp_path / "o.json", tmp_path / "f")
    with pytest.raises(ConfigError, match="'mnist_vae' is not in evaluate.disentangle"):
        dis.disentangle_stage(cfg, "mnist_vae", *args)
    if not torch.cuda.is_available():
        section = cfg.sections["disentangle"].model_copy(update={"device": "cuda:0"})
        bad = cfg.model_copy(update={"sections": {**cfg.sections, "disentangle": section}})
        with pytest.raises(DeviceError, match="disentangle.device"):
            dis.disentangle_stage(bad, "dsprites_vae", *args)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for seed\(s\) \[0, 1\]"):
        dis.disentangle_stage(cfg, "dsprites_vae", tmp_path, *args[1:])
    assert not (tmp_path / "o.json").exists()


def test_cli_reports_invalid_representation_with_exit_code_2(raw_params, write_params, capsys):
    raw_params["disentangle"]["representation"] = "foo"
    code = cli.main(["--params", str(write_params(raw_params)), "disentangle", "dsprites_vae",
                     "--models", "m", "--data", "d", "--raw", "r", "--out", "o.json",
                     "--figures", "f"])
    assert code == 2
    err = capsys.readouterr().err
    assert "vaebench disentangle: error" in err and ").representation: Input should be 'mean'" in err
