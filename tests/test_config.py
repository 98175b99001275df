"""params.yaml validation: every bad value is an error naming its key, before any work."""
from __future__ import annotations

import copy

import pytest
import yaml

from vaebench.config import ConfigError, load_config


def _load(raw, write_params):
    return load_config(write_params(raw))


def test_repository_params_are_valid_for_every_profile(raw_params, write_params):
    for profile in raw_params["profiles"]:
        raw = copy.deepcopy(raw_params)
        raw["profile"] = profile
        cfg = _load(raw, write_params)
        assert cfg.profile == profile
        assert cfg.models, "the default suite trains models"


def test_profile_overlay_is_applied(raw_params, write_params):
    raw_params["profile"] = "tiny"
    cfg = _load(raw_params, write_params)
    tiny = raw_params["profiles"]["tiny"]
    assert cfg.train.epochs == tiny["train"]["epochs"]
    assert cfg.datasets["dsprites"].n_train == tiny["datasets"]["dsprites"]["n_train"]
    # keys the overlay does not set keep their base value
    assert cfg.train.lr == raw_params["train"]["lr"]


def test_model_train_overrides_merge_and_validate(raw_params, write_params):
    name = next(iter(raw_params["models"]))
    raw_params["models"][name]["train"] = {"lr": 0.01}
    cfg = _load(raw_params, write_params)
    assert cfg.model_train(name).lr == 0.01
    raw_params["models"][name]["train"] = {"lr": -1}
    with pytest.raises(ConfigError, match=rf"models\.{name}\.train.*lr"):
        _load(raw_params, write_params)


@pytest.mark.parametrize("mutate, pattern", [
    (lambda r: r["models"]["mnist_vae"].update(family="gan"),
     r"models\.mnist_vae\.family: unknown family 'gan'; valid: .*vae"),
    (lambda r: r["models"]["mnist_beta_vae"].update(kl_weight=-1.0),
     r"models\.mnist_beta_vae\.kl_weight.*greater than or equal to 0"),
    (lambda r: r["models"]["mnist_vae"].update(latent_dim=0),
     r"models\.mnist_vae\.latent_dim.*greater than 0"),
    (lambda r: r["models"]["mnist_vae"].update(latent_dim="ten"),
     r"models\.mnist_vae\.latent_dim.*integer"),
    (lambda r: r["models"]["mnist_vae"].update(betta=2),
     r"models\.mnist_vae\.betta.*Extra inputs are not permitted"),
    (lambda r: r["models"]["mnist_vae"].update(dataset="cifar"),
     r"models\.mnist_vae\.dataset: 'cifar' is not in datasets"),
    (lambda r: r.update(device="gpu"), r"device.*'gpu' is not a device"),
    (lambda r: r.update(profile="huge"), r"profile: 'huge' is not defined"),
    (lambda r: r.update(seeds=[0, 0]), r"seeds: values must be distinct"),
    (lambda r: r.update(seeds=[]), r"seeds"),
    (lambda r: r.update(learning_rate=1), r"unknown top-level key.*learning_rate"),
    (lambda r: r["train"].update(batch_size=0), r"train.*batch_size.*greater than 0"),
    (lambda r: [b["train"].update(epochs={"mnist": 5}) for b in [r, *r["profiles"].values()]],
     r"train\.epochs has no entry for dataset 'dsprites'"),
    (lambda r: r["profiles"]["paper"].update(trian={}), r"profiles\.paper has unknown key.*trian"),
    (lambda r: r["profiles"]["quick"]["datasets"]["dsprites"].update(n_test=-3),
     r"datasets\.dsprites \(profile quick\)\.n_test.*greater than 0"),
    (lambda r: r["datasets"].update(cifar={}), r"datasets\.cifar: unknown dataset"),
    (lambda r: r["models"]["mnist_vae"].update(likelihood="bernoulli", binarize=False),
     r"models\.mnist_vae: likelihood 'bernoulli' with binarize: false .*set binarize: true"),
])
def test_bad_params_are_clear_errors(raw_params, write_params, mutate, pattern):
    mutate(raw_params)
    with pytest.raises(ConfigError, match=pattern):
        _load(raw_params, write_params)


def test_bernoulli_without_binarisation_is_fine_on_binary_data(raw_params, write_params):
    name = next(n for n, m in raw_params["models"].items() if m["dataset"] == "dsprites"
                and m.get("likelihood", "bernoulli") == "bernoulli")
    raw_params["models"][name]["binarize"] = False
    assert _load(raw_params, write_params).models[name].binarize is False


def test_every_stage_section_must_be_written_out(raw_params, write_params):
    del raw_params["disentangle"]   # DVC stages declare it as a param
    with pytest.raises(ConfigError, match=r"section\(s\) \['disentangle'\] are missing"):
        _load(raw_params, write_params)


def test_a_key_written_twice_is_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("profile: tiny\nseeds: [0]\nseeds: [1]\n")
    with pytest.raises(ConfigError, match="key 'seeds' appears twice"):
        load_config(path)


def test_missing_params_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_config(tmp_path / "nope.yaml")


def test_cli_reports_config_errors_with_exit_code_2(raw_params, write_params, capsys):
    from vaebench.cli import main
    raw_params["models"]["mnist_vae"]["family"] = "gan"
    path = write_params(raw_params)
    assert main(["--params", str(path), "check"]) == 2
    assert "unknown family 'gan'" in capsys.readouterr().err


def test_exponent_floats_read_as_numbers_and_floats_are_not_integers(raw_params, tmp_path):
    """``lr: 1e-3`` is a number (YAML 1.2, as DVC writes it), not the string PyYAML's
    YAML 1.1 rules give; ``1e11`` is a float, so it is no K (an integer)."""
    text = yaml.safe_dump({**raw_params, "profile": "tiny"}, sort_keys=False)
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("  lr: 0.001\n", "  lr: 1e-3\n", 1))
    assert load_config(path).train.lr == 0.001
    raw_params["profile"] = "tiny"
    raw_params["profiles"]["tiny"]["loglik"]["ks"] = [1, 5]
    text = yaml.safe_dump(raw_params, sort_keys=False, default_flow_style=None)
    path.write_text(text.replace("ks: [1, 5]", "ks: [1, 1e11]", 1))
    with pytest.raises(ConfigError, match=r"ks\.1: Input should be a valid integer"):
        load_config(path)


def test_an_enormous_loglik_is_warned_about_with_its_cost(raw_params, write_params, capsys):
    raw_params["profile"] = "tiny"
    load_config(write_params(raw_params))
    assert "warning" not in capsys.readouterr().err
    raw_params["profiles"]["tiny"]["loglik"]["ks"] = [1, 10**9]   # n_test 32: 3.2e10 rows
    load_config(write_params(raw_params))
    err = capsys.readouterr().err
    assert "K = 1,000,000,000 on 32 mnist test images is ~3.2e+10 decoder evaluations" in err
    assert "(~9 hours at 1e6 a second)" in err and "mnist_vae" in err


def test_evaluations_apply_by_class_capability(raw_params, write_params):
    """robustness needs an amortised encoder of single images, disentangle single images:
    families are refused by what their class declares, whatever the model is called."""
    from vaebench.config import EVALUATE_REQUIRES
    from vaebench.models import MODELS
    refused = {stage: sorted(f for f, cls in MODELS.items() if not test(cls))
               for stage, (test, _) in EVALUATE_REQUIRES.items()}
    assert refused["robustness"] == ["svi_vae", "tdvae"]
    assert refused["disentangle"] == ["tdvae"]
    raw_params["models"]["odd_name"] = {**raw_params["models"]["moving_sprites_tdvae"]}
    raw_params["evaluate"]["robustness"].append("odd_name")
    with pytest.raises(ConfigError, match=r"evaluate\.robustness: model 'odd_name' \(family "
                                          r"'tdvae'\) has no amortised encoder"):
        load_config(write_params(raw_params))



def test_model_build_check_draws_nothing_from_the_global_generator(raw_params, write_params,
                                                                   monkeypatch):
    """load_config builds every model on the CPU (initialising weights): those draws must
    not move the global generator (the state after load_config is the same with and
    without the builds)."""
    import torch

    from vaebench import config
    path = write_params(raw_params)
    torch.manual_seed(0)
    load_config(path)
    with_builds = torch.rand(3)
    monkeypatch.setattr(config, "_check_buildable", lambda *args: None)
    torch.manual_seed(0)
    load_config(path)
    assert torch.equal(torch.rand(3), with_builds)
