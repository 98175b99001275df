"""The sample-quality stage and its feature net: applicability, sizes, the tiny profile."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from vaebench import cli, mirror
from vaebench.config import ConfigError, load_config
from vaebench.evaluate.featurenet import FeatureNet, halvings
from vaebench.evaluate.samplequality import generate, samplequality_stage
from vaebench.models import build_model, validate_model_config


@pytest.fixture
def tiny_params(raw_params, write_params):
    """params.yaml on the tiny profile, CPU; ``mutate(raw)`` edits it first."""
    def write(mutate=lambda raw: None):
        raw_params.update(profile="tiny", device="cpu")
        mutate(raw_params)
        return write_params(raw_params)
    return write


def test_check_rejects_a_model_that_cannot_sample(tiny_params):
    add = lambda r: r["evaluate"]["samplequality"].append("moving_sprites_tdvae")  # noqa: E731
    with pytest.raises(ConfigError, match=r"evaluate\.samplequality: model "
                                          r"'moving_sprites_tdvae' \(family 'tdvae'\) generates "
                                          r"no single images.*families it applies to: .*vae"):
        load_config(tiny_params(add))


def test_stage_rejects_a_model_that_cannot_sample_before_any_work(tiny_params, tmp_path):
    cfg = load_config(tiny_params())
    with pytest.raises(ConfigError, match="model 'moving_sprites_tdvae' .* generates no single"):
        samplequality_stage(cfg, "moving_sprites_tdvae", tmp_path / "none", tmp_path / "none",
                            tmp_path / "none", tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_a_model_without_a_fitted_prior_is_named_when_it_returns_no_samples():
    mcfg = validate_model_config("my_ae", {"family": "ae", "dataset": "mnist",
                                           "backbone": "mlp", "latent_dim": 2})
    ae = build_model(mcfg, (1, 28, 28))          # ex-post mixture not fitted: prior() raises
    with pytest.raises(ConfigError, match="model 'my_ae' returned no samples"):
        generate(ae, "my_ae", 4, 2, 0, torch.device("cpu"))


@pytest.mark.parametrize("binarize", [True, False])
def test_reconstructions_take_the_test_images_as_the_model_saw_them_in_training(
        monkeypatch, binarize):
    """A model trained on binarised data (e.g. svi_vae, whose encoder evaluates a
    Bernoulli likelihood of its input) reconstructs the fixed binarisation, never the
    grey intensities; the others the intensities."""
    from types import SimpleNamespace

    from vaebench.evaluate import samplequality as sq
    from vaebench.models.capabilities import Generative
    seen = []

    class Model(Generative):
        cfg = SimpleNamespace(binarize=binarize)

        def reconstruct(self, x):
            seen.append(x)
            return x

        def sample(self, n):
            return torch.zeros(n, 1, 4, 4)
    grey, binary = torch.full((10, 1, 4, 4), 0.4), torch.ones(10, 1, 4, 4)
    data = SimpleNamespace(name="mnist", device=torch.device("cpu"),
                           test_inputs=lambda b: binary if b else grey)
    monkeypatch.setattr(sq, "compare", lambda features, reference, dataset, k: {})
    net = SimpleNamespace(embed=lambda x: x.reshape(len(x), -1).numpy())
    scfg = SimpleNamespace(n_samples=3, kth_neighbour=1, batch_size=2, n_reference=4)
    sq.evaluate_run(Model(), "m", data, net, scfg, 0, np.zeros((4, 16)))
    inputs = torch.cat(seen)
    assert len(inputs) == 3 and torch.equal(inputs, (binary if binarize else grey)[4:7])


@pytest.mark.parametrize("mutate, pattern", [
    (lambda r: r["samplequality"].update(kth_neighbour=30),
     r"samplequality \(profile tiny\).*kth_neighbour \(30\) must be below n_reference \(24\)"),
    (lambda r: r["samplequality"]["featurenet"].update(datasets=["mnist"]),
     r"model 'dsprites_ae' is trained on 'dsprites', which has no feature net"),
    (lambda r: r["profiles"]["quick"]["samplequality"]["featurenet"].update(datasets=["mnist"]),
     r"profiles\.quick\.samplequality\.featurenet\.datasets: set it in the base"),
    (lambda r: r["samplequality"].update(datasets={"cifar": {"kth_neighbour": 2}}),
     r"samplequality \(profile \w+\): no dataset 'cifar'"),
    (lambda r: r["samplequality"].update(datasets={"mnist": {"n_reference": 2}}),
     r"kth_neighbour \(3\) must be below n_reference \(2\)"),
])
def test_bad_samplequality_params_are_clear_errors(tiny_params, mutate, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(tiny_params(mutate))


def test_feature_net_halves_each_dataset_to_a_side_of_eight_or_less():
    assert (halvings(28), halvings(64), halvings(8)) == (2, 3, 0)
    for shape, sizes in (((1, 28, 28), [10]), ((1, 64, 64), [3, 6, 40, 32, 32])):
        net = FeatureNet(shape, sizes, channels=4, feature_dim=5)
        x = torch.rand(3, *shape)
        assert net.features(x).shape == (3, 5)
        assert [t.shape for t in net.logits(x)] == [(3, s) for s in sizes]


@pytest.mark.slow   # trains a feature net and a model, then runs the stage
def test_stage_on_the_tiny_profile_writes_the_floor_row(tmp_path, mlflow_recorder, tiny_params,
                                                        tiny_data):
    from vaebench.train import train_stage
    logged = mlflow_recorder
    params = tiny_params()
    cfg = load_config(params)
    nets = tmp_path / "models" / "featurenet"
    assert cli.main(["--params", str(params), "featurenet", "mnist", "--data",
                     str(tiny_data / "mnist"), "--out", str(nets / "mnist"),
                     "--metrics", str(tmp_path / "featurenet.json")]) == 0
    accuracy = json.loads((tmp_path / "featurenet.json").read_text())["test_accuracy"]
    assert set(accuracy) == {"digit"} and 0 <= accuracy["digit"] <= 1
    name = "mnist_ae"
    train_stage(cfg, name, tiny_data / "mnist", tmp_path / "models" / name,
                tmp_path / "train.json", tmp_path / "train_plots")
    out = tmp_path / "sq.json"
    assert cli.main(["--params", str(params), "samplequality", name, "--models",
                     str(tmp_path / "models" / name), "--featurenets", str(nets),
                     "--data", str(tiny_data), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    keys = {"fd_mnistclassifier", "precision", "recall"}
    assert set(result["floor"]) == keys
    for row in (result["floor"], result["samples"], result["reconstructions"]):
        assert row["fd_mnistclassifier"] >= 0 and 0 <= row["precision"] <= 1
        assert 0 <= row["recall"] <= 1
    assert set(result["seeds"]["0"]["samples"]) == keys
    assert result["featurenet"]["test_accuracy"] == accuracy
    assert (result["model"], result["dataset"], result["n_reference"], result["kth_neighbour"]) == \
        (name, "mnist", 24, 3)
    assert not logged                      # the stage writes files; mlflow-sync mirrors them:
    mirror.samplequality(out, tmp_path / "models" / name)
    mirrored = [m for p, m in logged if p == "sampleq"]
    assert mirrored[-1]["floor"] == result["floor"]
    # the floor does not depend on the model: a second run gives the same numbers
    assert cli.main(["--params", str(params), "samplequality", name, "--models",
                     str(tmp_path / "models" / name), "--featurenets", str(nets),
                     "--data", str(tiny_data), "--out", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["floor"] == result["floor"] and again["samples"] == result["samples"]
    # the reference and reconstructed test rows must fit in the test split
    big = tiny_params(lambda r: r["profiles"]["tiny"]["samplequality"].update(n_samples=50))
    assert cli.main(["--params", str(big), "samplequality", name, "--models",
                     str(tmp_path / "models" / name), "--featurenets", str(nets),
                     "--data", str(tiny_data), "--out", str(tmp_path / "big.json")]) == 2
    assert not (tmp_path / "big.json").exists()
    assert np.isfinite(result["samples"]["fd_mnistclassifier"])
