"""theta/phi update schedules (models/variational.py) through the real training loop.

``alternating``: even steps move only theta (decoder), odd steps only
phi (encoder); parameters that must not move stay bit-identical.
"""
from __future__ import annotations

import pytest
import torch

from vaebench.config import TrainConfig
from vaebench.train import fit


def states_seen_by_fit(model, data, steps=4, batch=16):
    """Parameters at the start of each training step, and after the last one."""
    seen = []
    loss = model.loss

    def spy(x, step, **kw):
        if model.training:
            seen.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return loss(x, step, **kw)

    model.loss = spy
    fit(model, data, TrainConfig(epochs=1, batch_size=batch), epochs=1, seed=0, binarize=True)
    assert len(seen) == steps
    return seen + [{k: v.detach().clone() for k, v in model.named_parameters()}]


def moved(before, after, prefix):
    names = [k for k in before if k.startswith(prefix)]
    assert names
    return {k: not torch.equal(before[k], after[k]) for k in names}


def test_alternating_steps_theta_then_phi(tiny):
    model = tiny.model(optimisation="alternating")
    assert set(model.optim_groups()) == {"theta", "phi"}
    seen = states_seen_by_fit(model, tiny.data())
    for step, (before, after) in enumerate(zip(seen[:-1], seen[1:])):
        theta, phi = moved(before, after, "decoder."), moved(before, after, "encoder.")
        if step % 2 == 0:   # theta step: phi bit-identical, every decoder tensor moved
            assert all(theta.values()) and not any(phi.values()), f"step {step}"
        else:               # phi step: theta bit-identical
            assert all(phi.values()) and not any(theta.values()), f"step {step}"


def test_joint_steps_both(tiny):
    model = tiny.model()
    assert set(model.optim_groups()) == {"all"}
    seen = states_seen_by_fit(model, tiny.data())
    for before, after in zip(seen[:-1], seen[1:]):
        assert all(moved(before, after, "decoder.").values())
        assert all(moved(before, after, "encoder.").values())


def test_groups_partition_the_parameters(tiny):
    model = tiny.model(optimisation="alternating")
    groups = model.optim_groups()
    ids = [id(p) for params in groups.values() for p in params]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert {id(p) for p in groups["phi"]} == {id(p) for p in model.encoder.parameters()}


@pytest.mark.parametrize("family", ["vae", "beta_vae"])
def test_every_vae_family_takes_the_options(tiny, family):
    model = tiny.model(family, optimisation="alternating", gradient="score_function", mc_samples=2,
                       baseline="leave_one_out")
    assert model.groups_to_step(0) == ["theta"] and model.groups_to_step(1) == ["phi"]
    out = model.loss(torch.ones(4, *tiny.shape), 0)
    assert torch.isfinite(out.loss)


def test_the_default_suite_declares_the_variants(tiny_config):
    cfg = tiny_config                        # the real params.yaml (tests/conftest.py)
    score, alt, svi = (cfg.models[k] for k in ("mnist_vae_score", "mnist_vae_alternating",
                                               "mnist_svi_vae"))
    assert (score.gradient, score.baseline, score.mc_samples) == ("score_function", "leave_one_out", 2)
    assert alt.optimisation == "alternating" and alt.gradient == "reparam"
    assert svi.family == "svi_vae" and svi.test_steps >= 100
    assert cfg.models["mnist_vae"].gradient == "reparam"
    assert cfg.models["mnist_vae"].optimisation == "joint"
