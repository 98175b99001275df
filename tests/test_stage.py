"""The stage context: device resolution order, the model guard, seed streams that keep
the values the stages drew before they shared this module, and the clock."""
from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import torch

from vaebench.config import ConfigError, load_config
from vaebench.devices import DeviceError
from vaebench.stage import (Clock, StageContext, checked_model, mixed_seed, seeded_torch,
                            stream_rng, stream_seed)

# No CUDA device here, so an index that cannot exist shows which spec was resolved.
NO_CUDA = not torch.cuda.is_available()


def _config(raw_params, write_params, top="cpu", section=None, dataset=None):
    raw_params["profile"] = "tiny"
    raw_params["device"] = top
    raw_params["loglik"]["device"] = section
    if dataset is not None:
        raw_params["loglik"]["datasets"] = {"mnist": {"device": dataset}}
    return load_config(write_params(raw_params))


@pytest.mark.skipif(not NO_CUDA, reason="reads which spec was chosen from a missing CUDA device")
def test_device_comes_from_the_stage_settings_then_the_section_then_the_top_level(
        raw_params, write_params):
    cfg = _config(copy.deepcopy(raw_params), write_params, top="cuda:7", section="cuda:5", dataset="cpu")
    settings = cfg.section("loglik").for_dataset("mnist")
    assert StageContext.create(cfg, "loglik", "m", settings).device.type == "cpu"
    with pytest.raises(DeviceError, match=r"loglik\.device: 'cuda:5'"):
        StageContext.create(cfg, "loglik", "m", cfg.section("loglik"))   # no dataset override
    with pytest.raises(DeviceError, match=r"loglik\.device: 'cuda:5'"):
        StageContext.create(cfg, "loglik", "m")                          # no settings at all
    cfg = _config(copy.deepcopy(raw_params), write_params, top="cuda:7")
    with pytest.raises(DeviceError, match=r"'cuda:7'"):
        StageContext.create(cfg, "loglik", "m", cfg.section("loglik"))


def test_context_records_the_device_and_threads(tiny_config):
    ctx = StageContext.create(tiny_config, "robustness", "mnist_vae",
                              tiny_config.section("robustness"))
    assert ctx.device_name == str(ctx.device)
    assert ctx.threads == torch.get_num_threads()


def test_guard_names_the_unknown_model_and_the_inapplicable_one(tiny_config):
    assert checked_model(tiny_config, "loglik", "mnist_vae").family == "vae"
    with pytest.raises(ConfigError, match="'nope' is not in params.yaml models"):
        checked_model(tiny_config, "train", "nope")
    with pytest.raises(ConfigError, match=r"evaluate\.loglik: model 'mnist_ae' \(family 'ae'\)"):
        checked_model(tiny_config, "loglik", "mnist_ae")


def test_seed_streams_keep_the_values_the_stages_drew_before():
    # values of robustness's stream seed, disentangle's per-metric generator and
    # samplequality's per-seed sampling seed, recorded from the code before the move
    assert stream_seed(0, "test") == 3632233996
    assert stream_seed(3, "attack", "l2", "latent") == 3694123662
    assert stream_rng(0, "mig").integers(2**31 - 1) == 994359108
    assert stream_rng(5, "attribute/shape").integers(2**31 - 1) == 989016992
    assert mixed_seed(0, 1) == 3964924996


def test_seed_streams_differ_by_name_and_seed():
    assert stream_seed(0, "test") != stream_seed(0, "probe") != stream_seed(1, "probe")
    a, b = stream_rng(0, "mig").random(4), stream_rng(0, "dci").random(4)
    assert not np.allclose(a, b)
    assert mixed_seed(0, 1) != mixed_seed(1, 0)


def test_seeded_torch_repeats_its_draws_and_restores_the_global_rng():
    torch.manual_seed(123)
    expected_after = torch.rand(3)
    torch.manual_seed(123)
    with seeded_torch(torch.device("cpu"), 7):
        first = torch.rand(3)
    assert torch.equal(torch.rand(3), expected_after)      # as if nothing had run
    with seeded_torch(torch.device("cpu"), 7):
        assert torch.equal(torch.rand(3), first)


def test_clock_records_wall_and_cpu_seconds_per_part():
    clock = Clock()
    with clock.part("sleep"):
        time.sleep(0.05)
    with clock.part("busy"):
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
    clock.lap("nothing")
    clock.total()
    # (no bound on the sleep's CPU seconds: process time counts every thread, and a
    # thread left by an earlier test may run meanwhile)
    assert clock.wall["sleep"] >= 0.05
    assert clock.cpu["busy"] >= 0.05 and clock.wall["busy"] >= 0.05
    assert set(clock.wall) == set(clock.cpu) == {"sleep", "busy", "nothing", "total"}
    assert clock.wall["total"] >= clock.wall["sleep"] + clock.wall["busy"]
    assert clock.cpu["total"] >= clock.cpu["busy"]
