"""Per-datapoint stochastic variational inference (models/svi_vae.py; Hoffman et al. 2013)."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence

from vaebench.config import TrainConfig
from vaebench.models.base import diagonal_gaussian
from vaebench.checkpoints import load_checkpoint, save_checkpoint
from vaebench.train import fit


@pytest.fixture(scope="module")
def svi(tiny):
    def make(**options):
        return tiny.model("svi_vae", **{"inner_steps": 3, "inner_lr": 0.1, "test_steps": 60,
                                        "test_lr": 0.1, **options})
    return make


def elbo(model, x, lam, n=256, seed=0):
    """ELBO(x_i; theta, lambda_i) per example, n samples with fixed noise (common random numbers)."""
    g = torch.Generator().manual_seed(seed)
    q = diagonal_gaussian(lam)
    z = q.mean + q.stddev * torch.randn(n, *q.mean.shape, generator=g)   # (n, B, D)
    with torch.no_grad():
        return model.decode(z).log_prob(x).mean(0) - kl_divergence(q, model.prior())


@pytest.fixture(scope="module")
def trained_state(tiny, svi):
    """Decoder weights that have learnt the four prototypes, so that z matters."""
    data, model = tiny.data(), svi()
    fit(model, data, TrainConfig(epochs=10, batch_size=16, lr=0.01), epochs=10, seed=0,
        binarize=True)
    return model.state_dict()


@pytest.fixture
def trained(tiny, svi, trained_state):
    def make(**options):
        model = svi(**options)
        model.load_state_dict(trained_state)
        return tiny.data(), model
    return make


def test_svi_step_increases_the_per_datapoint_elbo(trained):
    data, model = trained()
    model.before_fit(data, True)                 # rows at the prior, trained decoder
    idx = torch.arange(8, 24)
    x = data.train_batch(idx, True)
    before = elbo(model, x, model.lam[idx])
    model.step_rows(x, idx)                      # the SVI step's inner loop: lambda_i only
    after_lambda = elbo(model, x, model.lam[idx])
    assert (after_lambda - before).mean() > 0.5
    assert (after_lambda > before).float().mean() > 0.8
    untouched = torch.cat([model.lam[:8], model.lam[24:]])
    assert torch.equal(untouched, torch.zeros_like(untouched)), "rows outside the batch moved"
    # ... then the theta step, lambda_i fixed (a plain gradient step on the decoder)
    lam = model.lam[idx].clone()
    loss = model.elbo_loss(diagonal_gaussian(lam), x, 0).loss
    grads = torch.autograd.grad(loss, list(model.decoder.parameters()))
    with torch.no_grad():
        for p, g in zip(model.decoder.parameters(), grads):
            p -= 0.05 * g
    assert (elbo(model, x, lam) - after_lambda).mean() > 0


def test_fit_passes_indices_and_every_row_is_fitted(tiny, svi):
    data, model = tiny.data(), svi()
    history = fit(model, data, TrainConfig(epochs=2, batch_size=16), epochs=2, seed=0, binarize=True)
    assert model.lam.shape == (64, 6)
    assert (model.lam != 0).any(dim=1).all(), "some training example was never visited"
    # the test terms need test-time inference: only after the last epoch
    assert history[0]["test"] == {} and "elbo" in history[-1]["test"]


def test_test_time_inference_fixes_the_decoder_and_improves_the_elbo(trained):
    data, model = trained()
    x = data.test_inputs(True)
    model.zero_grad(set_to_none=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    q = model.encode(x)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in model.parameters())
    assert q.batch_shape == (len(x),) and q.event_shape == (3,)
    prior_lam = torch.zeros(len(x), 6)
    fitted_lam = torch.cat([q.mean, q.variance.log()], -1)
    assert (elbo(model, x, fitted_lam) - elbo(model, x, prior_lam)).mean() > 1.0
    torch.testing.assert_close(model.encode(x).mean, q.mean)     # deterministic in x


def test_test_time_inference_is_chunked_per_datapoint(trained):
    data, whole = trained(test_chunk=100)
    _, chunked = trained(test_chunk=5)
    x = data.test_inputs(True)
    a, b = whole.encode(x), chunked.encode(x)
    # each lambda_i depends on x_i only: chunks differ only through the Monte Carlo noise
    lam = [torch.cat([q.mean, q.variance.log()], -1) for q in (a, b)]
    gap = elbo(whole, x, lam[0]) - elbo(whole, x, lam[1])
    assert gap.abs().mean() < 0.5


def test_checkpoint_round_trip_without_the_table(tiny, svi, tmp_path):
    data, model = tiny.data(), svi()
    fit(model, data, TrainConfig(epochs=1, batch_size=32), epochs=1, seed=0, binarize=True)
    save_checkpoint(tmp_path / "seed0.pt", model, {"model": "t"})
    loaded, _ = load_checkpoint(tmp_path / "seed0.pt")
    assert "lam" not in loaded.state_dict() and loaded.encoder is None
    x = data.test_inputs(True)
    torch.testing.assert_close(loaded.encode(x).mean, model.encode(x).mean)


def test_training_step_needs_the_table(tiny, svi):
    model = svi()
    with pytest.raises(RuntimeError, match="before_fit"):
        model.training_loss(torch.ones(2, *tiny.shape), 0, torch.tensor([0, 1]))


def test_svi_rejects_options_it_cannot_honour(svi):
    from vaebench.config import ConfigError
    for bad in ({"gradient": "score_function"}, {"optimisation": "alternating"}, {"test_steps": 0}):
        with pytest.raises(ConfigError):
            svi(**bad)
