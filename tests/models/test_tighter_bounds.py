"""MIWAE, CIWAE, PIWAE (Rainforth et al. 2018, arXiv:1802.04537): their special cases, a
hand-computed value, the ordering of the bounds, and PIWAE's per-group gradients."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from vaebench.config import ConfigError, TrainConfig
from vaebench.data.base import PreparedData
from vaebench.models import build_model, validate_model_config
from vaebench.models.base import LossTerms
from vaebench.models.iwae import iw_bound
from vaebench.models.miwae import miwae_bound
from vaebench.train import fit

SHAPE = (1, 28, 28)


def _model(family: str, **extra):
    block = {"family": family, "dataset": "mnist", "backbone": "mlp", "latent_dim": 4,
             "hidden": [16], **extra}
    return build_model(validate_model_config("m", block), SHAPE)


def _same_weights(family: str, like, **extra):
    model = _model(family, **extra)
    model.load_state_dict(like.state_dict())
    return model


def _x(n=5):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(3)).round()


def _log_w(*shape, seed=0):
    return 2.0 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_hand_computed_values():
    """M = K = 2, one example, w = (1, 3 | 2, 6) (rows m*K + k):
    MIWAE = 1/2 [log((1 + 3)/2) + log((2 + 6)/2)] = 1/2 (log 2 + log 4) = 3/2 log 2;
    VLB^(4) = log((1 + 3 + 2 + 6)/4) = log 3; ELBO = 1/4 log(1*3*2*6) = 1/2 log 6;
    CIWAE(1/2) on the 4 = 1/2 (1/2 log 6) + 1/2 log 3."""
    log_w = torch.tensor([[1.0], [3.0], [2.0], [6.0]], dtype=torch.float64).log()
    assert miwae_bound(log_w, 2).item() == pytest.approx(1.5 * math.log(2), abs=1e-12)
    assert iw_bound(log_w).item() == pytest.approx(math.log(3), abs=1e-12)
    assert log_w.mean(0).item() == pytest.approx(0.5 * math.log(6), abs=1e-12)
    ciwae = _model("ciwae", iw_samples=4, elbo_weight=0.5).objective(log_w)
    assert ciwae.item() == pytest.approx(0.25 * math.log(6) + 0.5 * math.log(3), abs=1e-12)
    miwae = _model("miwae", n_bounds=2, iw_samples=2)
    assert miwae.n_weights == 4 and miwae.objective(log_w).item() == pytest.approx(1.5 * math.log(2))


def test_miwae_special_cases_on_fixed_log_weights():
    log_w = _log_w(6, 3)                                       # (M*K, B)
    assert torch.equal(miwae_bound(log_w, 1), iw_bound(log_w))         # M = 1: VLB^(K)
    assert torch.allclose(miwae_bound(log_w, 6), log_w.mean(0))        # K = 1: mean of ELBOs
    # M = 2, K = 3: the mean of the two VLB^(3) of rows 0..2 and 3..5
    assert torch.allclose(miwae_bound(log_w, 2), (iw_bound(log_w[:3]) + iw_bound(log_w[3:])) / 2)
    with pytest.raises(ValueError, match="m = 4"):
        miwae_bound(log_w, 4)


def test_miwae_model_with_m1_is_the_iwae_and_with_k1_the_elbo():
    torch.manual_seed(0)
    iwae, x = _model("iwae", iw_samples=3), _x()
    miwae = _same_weights("miwae", iwae, n_bounds=1, iw_samples=3)
    torch.manual_seed(5)
    a = iwae.loss(x, 0)
    torch.manual_seed(5)
    b = miwae.loss(x, 0)
    assert torch.allclose(a.loss, b.loss, rtol=1e-6)
    out = _same_weights("miwae", iwae, n_bounds=4, iw_samples=1).loss(x, 0)
    assert torch.allclose(out.loss, -out.terms["elbo"], rtol=1e-6)   # mean of 4 single-sample ELBOs


def test_ciwae_endpoints_are_the_elbo_and_the_iwae_bound():
    log_w = _log_w(5, 4, seed=1)
    elbo_only = _model("ciwae", iw_samples=5, elbo_weight=1.0)
    assert torch.allclose(elbo_only.objective(log_w), log_w.mean(0))
    iw_only = _model("ciwae", iw_samples=5, elbo_weight=0.0)
    assert torch.equal(iw_only.objective(log_w), iw_bound(log_w))
    torch.manual_seed(0)
    iwae, x = _model("iwae", iw_samples=5), _x()
    ciwae = _same_weights("ciwae", iwae, iw_samples=5, elbo_weight=0.0)
    torch.manual_seed(9)
    a = iwae.loss(x, 0)
    torch.manual_seed(9)
    assert torch.allclose(a.loss, ciwae.loss(x, 0).loss, rtol=1e-6)


def test_elbo_le_miwae_le_iwae_on_every_draw_and_in_expectation():
    """Sample by sample (Jensen twice): mean log w <= MIWAE(M, K) <= VLB^(M K). In
    expectation, for a fixed budget M*K = 8, the bound grows with K (Rainforth et al. 2018):
    E MIWAE(8, 1) < E MIWAE(4, 2) < E MIWAE(2, 4) < E MIWAE(1, 8)."""
    log_w = _log_w(8, 20000, seed=2)                           # 20000 independent examples
    elbo, iwae = log_w.mean(0), iw_bound(log_w)
    bounds = [miwae_bound(log_w, m) for m in (8, 4, 2, 1)]
    for b in bounds[1:-1]:
        assert bool((elbo <= b + 1e-6).all() and (b <= iwae + 1e-6).all())
    for lower, upper in zip(bounds, bounds[1:]):
        diff = upper - lower                                    # paired: same draws
        assert diff.mean() > 4 * diff.std() / math.sqrt(len(diff))


def test_piwae_groups_get_exactly_their_own_objectives_gradients():
    """theta (decoder) follows VLB^(M K), phi (encoder) MIWAE(M, K), on the same samples."""
    torch.manual_seed(0)
    model, x = _model("piwae", n_bounds=2, iw_samples=3), _x()
    groups = model.optim_groups()
    assert set(groups) == {"theta", "phi"} and model.groups_to_step(0) == ["theta", "phi"]
    assert {id(p) for p in groups["phi"]} == {id(p) for p in model.encoder.parameters()}
    torch.manual_seed(4)
    out = model.loss(x, 0)
    out.backward(groups)
    got = {g: [p.grad.clone() for p in ps] for g, ps in groups.items()}

    def reference(bound, params):
        torch.manual_seed(4)                                    # the same samples
        _, log_w, _ = model.weights(x)
        return torch.autograd.grad(-bound(log_w).mean(), params)

    iwae_theta = reference(iw_bound, groups["theta"])
    miwae_phi = reference(lambda lw: miwae_bound(lw, 2), groups["phi"])
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(got["theta"], iwae_theta))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(got["phi"], miwae_phi))
    # the partition matters: the other objective would give other gradients
    iwae_phi = reference(iw_bound, groups["phi"])
    assert not all(torch.allclose(a, b, rtol=1e-3) for a, b in zip(got["phi"], iwae_phi))
    assert torch.allclose(out.loss, -out.terms["vlb"])         # logged loss: the decoder's bound


def test_the_training_loop_steps_each_group_on_its_own_objective():
    """One full-batch step of ``train.fit``: Adam's first step moves every coordinate by
    about lr * sign(gradient), so the signs show which objective each group followed."""
    torch.manual_seed(0)
    model, x = _model("piwae", n_bounds=2, iw_samples=3), _x(8)
    start = copy.deepcopy(model)
    images, none = x.to(torch.uint8), torch.zeros(8, 0, dtype=torch.long)
    data = PreparedData("test", {"dataset": "test", "max_value": 1, "image_shape": list(SHAPE)},
                        images, images, images, none, none)
    torch.manual_seed(4)
    fit(model, data, TrainConfig(epochs=1, batch_size=8), epochs=1, seed=0, binarize=False)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))   # fit's batch order
    groups, moved = start.optim_groups(), dict(model.named_parameters())
    names = {id(p): n for n, p in start.named_parameters()}

    def agrees(bound, group):
        torch.manual_seed(4)                                    # the samples the step drew
        _, log_w, _ = start.weights(x[order])
        grads = torch.autograd.grad(-bound(log_w).mean(), groups[group])
        return all(bool(((moved[names[id(p)]] - p).sign() == -g.sign())[g.abs() > 1e-5].all())
                   for p, g in zip(groups[group], grads))

    assert agrees(iw_bound, "theta") and agrees(lambda lw: miwae_bound(lw, 2), "phi")
    assert not agrees(iw_bound, "phi")                          # the test can tell them apart


def test_group_losses_must_name_the_optimiser_groups():
    w = torch.nn.Parameter(torch.ones(2))
    out = LossTerms(w.sum(), group_losses={"theta": w.sum()})
    with pytest.raises(ValueError, match=r"\['theta'\].*\['all'\]"):
        out.backward({"all": [w]})


def test_config_errors_name_the_key():
    base = {"family": "ciwae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 4}
    with pytest.raises(ConfigError, match=r"models\.x\.elbo_weight"):
        validate_model_config("x", {**base, "elbo_weight": 1.5})
    with pytest.raises(ConfigError, match=r"models\.x\.optimisation"):
        validate_model_config("x", {**base, "family": "piwae", "optimisation": "alternating"})
    with pytest.raises(ConfigError, match=r"models\.x\.n_bounds:"):
        validate_model_config("x", {**base, "family": "miwae", "n_bounds": 0})
