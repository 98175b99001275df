"""What every deterministic autoencoder shares (models/ae.py): the ex-post Gaussian
mixture as prior, the decoder's start at the pixel marginal, and the diagnostics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from vaebench.data import PreparedData
from vaebench.models import build_model, validate_model_config
from vaebench.models.ae import active_fraction
from vaebench.models.capabilities import NotFitted
from vaebench.models.jacobian import jacobian_frobenius
from vaebench.checkpoints import load_checkpoint, save_checkpoint

AE_FAMILIES = ["ae", "dae", "sparse_ae", "ksparse_ae", "cae"]
SHAPE = (1, 28, 28)


def _model(family="ae", backbone="mlp", shape=SHAPE, **extra):
    block = {"family": family, "dataset": "mnist", "backbone": backbone, "latent_dim": 3,
             "hidden": [12] if backbone == "mlp" else None, "expost_components": 2, **extra}
    torch.manual_seed(0)
    return build_model(validate_model_config("m", block), shape)


def _data(n=120, shape=SHAPE, seed=0) -> PreparedData:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, *shape, generator=g) * 255).to(torch.uint8)     # intensities
    meta = {"max_value": 255, "image_shape": list(shape), "dataset": "fake"}
    f = torch.zeros(n, 1, dtype=torch.int64)
    return PreparedData("fake", meta, x, x[:20], (x[:20] > 127).to(torch.uint8), f, f[:20])


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
def test_prior_is_the_fitted_mixture_with_sklearn_log_densities(covariance):
    model = _model(expost_covariance=covariance, expost_components=3)
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(m, 0.3, (100, 3)) for m in (-2.0, 0.0, 2.0)])
    gmm = model.fit_expost(codes, seed=0)
    assert isinstance(gmm, GaussianMixture) and gmm.covariance_type == covariance
    ours = model.prior().log_prob(torch.as_tensor(codes, dtype=torch.float32))
    assert torch.allclose(ours.double(), torch.as_tensor(gmm.score_samples(codes)), atol=1e-3)


@pytest.mark.parametrize("family", AE_FAMILIES)
def test_after_fit_turns_the_autoencoder_into_a_sampler_and_the_checkpoint_keeps_it(
        family, tmp_path):
    model = _model(family)
    for nothing_fitted_yet in (model.prior, lambda: model.sample(2)):
        with pytest.raises(NotFitted, match="after_fit"):
            nothing_fitted_yet()
    torch.manual_seed(1)
    model.after_fit(_data(), binarize=True)
    prior = model.prior()
    assert prior.batch_shape == () and prior.event_shape == (3,)
    codes = model.represent(_data().test_inputs(True))
    assert torch.isfinite(prior.log_prob(codes)).all()
    assert prior.sample((5,)).shape == (5, 3)
    images = model.sample(6)
    assert images.shape == (6, *SHAPE) and images.min() >= 0 and images.max() <= 1

    save_checkpoint(tmp_path / "seed0.pt", model, {"model": "m", "seed": 0, "dataset": "mnist"})
    loaded, _ = load_checkpoint(tmp_path / "seed0.pt")
    assert bool(loaded.expost_fitted)
    for name in ("expost_weights", "expost_means", "expost_scale_tril"):
        assert torch.equal(getattr(loaded, name), getattr(model, name))
    assert torch.equal(loaded.prior().log_prob(codes), prior.log_prob(codes))


def test_after_fit_is_reproducible_from_the_torch_seed():
    fits = []
    for seed in (5, 5):
        model = _model(expost_components=4)
        torch.manual_seed(seed)
        model.after_fit(_data(), binarize=True)
        fits.append(model.expost_means.clone())
    assert torch.equal(fits[0], fits[1])


def test_more_components_than_training_codes_is_a_clear_error():
    model = _model(expost_components=50)
    with pytest.raises(ValueError, match="expost_components = 50 needs at least 50"):
        model.after_fit(_data(n=30), binarize=True)


def test_before_fit_starts_the_decoder_at_the_pixel_marginal():
    data = _data()
    mean = data.x_train.float().mean(0) / 255                         # (1, 28, 28)
    mlp = _model()
    mlp.before_fit(data, True)
    assert torch.allclose(torch.sigmoid(mlp.decoder.net[-1].bias), mean.flatten(), atol=1e-5)
    conv = _model(backbone="conv64", shape=(1, 64, 64))
    data64 = _data(shape=(1, 64, 64))
    conv.before_fit(data64, True)
    target = data64.x_train.float().mean() / 255
    assert torch.sigmoid(conv.decoder.net[-1].bias).item() == pytest.approx(target.item(), abs=1e-5)


def test_before_fit_follows_the_likelihood():
    data = _data()
    mean = data.x_train.float().mean(0) / 255
    gaussian = _model(likelihood="gaussian")                          # the mean itself
    gaussian.before_fit(data, False)
    assert torch.allclose(gaussian.decoder.net[-1].bias, mean.flatten(), atol=1e-5)
    learned = _model(likelihood="gaussian_learned")                   # no natural start: untouched
    before = learned.decoder.net[-1].bias.clone()
    learned.before_fit(data, False)
    assert torch.equal(learned.decoder.net[-1].bias, before)


def test_active_fraction_on_hand_made_codes():
    codes = torch.tensor([[1.0, 0.05, -0.5, 0.0],     # threshold 0.1: units 0, 2 -> 1/2
                          [0.0, 0.0, 0.0, 0.0],       # nothing active -> 0
                          [0.2, -2.0, 0.1, 0.3]])     # threshold 0.2 (strict): units 1, 3 -> 1/2
    assert active_fraction(codes) == pytest.approx(1 / 3)


def test_diagnostics_are_the_documented_quantities():
    model = _model("ksparse_ae", top_k=1)
    x = _data().test_inputs(True)
    out = model.diagnostics(x)
    assert "expost_code_logpdf" not in out                          # no mixture yet
    with torch.no_grad():
        codes = model.represent(x)
        assert out["recon_nats"] == pytest.approx(float(-model.decode(codes).log_prob(x).mean()), rel=1e-5)
        mse = (model.decode(codes).mean - x).pow(2).mean()
        assert out["recon_mse"] == pytest.approx(float(mse), rel=1e-5)
        assert out["jacobian_sq_norm"] == pytest.approx(float(jacobian_frobenius(model.represent, x).mean()), rel=1e-5)
    assert 0 < out["active_fraction"] <= 1 / 3 + 1e-6               # k = 1 of 3 units
    torch.manual_seed(0)
    model.after_fit(_data(), binarize=True)
    assert np.isfinite(model.diagnostics(x)["expost_code_logpdf"])
