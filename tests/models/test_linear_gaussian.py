"""The linear-Gaussian yardstick (Tipping & Bishop 1999): PPCA in closed form and the linear VAE,
whose exact log p(x) = log N(x; mu, W W^T + sigma^2 I) is known."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from vaebench.config import ConfigError, TrainConfig
from vaebench.data.base import PreparedData
from vaebench.models import build_model, validate_model_config
from vaebench.train import fit

SHAPE = (1, 4, 4)
D, LATENT = 16, 3


def _model(family, **extra):
    block = {"family": family, "dataset": "mnist", "latent_dim": LATENT, **extra}
    return build_model(validate_model_config("m", block), SHAPE)


@pytest.fixture(scope="module")
def data() -> PreparedData:
    """Intensities in [0, 1] drawn from a 3-factor linear-Gaussian model, stored as uint8."""
    g = torch.Generator().manual_seed(0)
    w = 0.12 * torch.randn(D, LATENT, generator=g)
    mu = 0.5 + 0.1 * torch.randn(D, generator=g)

    def draw(n):
        x = torch.randn(n, LATENT, generator=g) @ w.T + mu + 0.08 * torch.randn(n, D, generator=g)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).view(n, *SHAPE)

    x_train, x_test = draw(600), draw(200)
    return PreparedData(name="synthetic", meta={"max_value": 255, "image_shape": list(SHAPE)},
                        x_train=x_train, x_test=x_test, x_test_binary=(x_test > 127).to(torch.uint8),
                        factors_train=torch.zeros(600, 0, dtype=torch.int64),
                        factors_test=torch.zeros(200, 0, dtype=torch.int64))


@pytest.fixture(scope="module")
def ppca(data):
    model = _model("ppca")
    model.after_fit(data, binarize=False)
    return model.eval()


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.flatten(1).double().numpy()


def _posterior(model, x):
    """p(z|x) = N(M^-1 W^T (x - mu), sigma^2 M^-1), M = W^T W + sigma^2 I, by brute force (float64)."""
    w = model.linear_decoder.weight.detach().double()                  # (D, d)
    mu = model.linear_decoder.bias.detach().double()
    s2 = model.likelihood.variance.detach().double()
    m = w.T @ w + s2 * torch.eye(LATENT, dtype=torch.float64)
    loc = torch.linalg.solve(m, w.T @ (x.flatten(1).double() - mu).T).T   # (B, d)
    return MultivariateNormal(loc, covariance_matrix=s2 * torch.linalg.inv(m))


def test_ppca_exact_log_prob_equals_sklearn_score_samples(data, ppca):
    pca = PCA(n_components=LATENT, svd_solver="full").fit(_flat(data.train_batch(
        torch.arange(len(data.x_train)), binarize=False)))
    x = data.test_inputs(binarize=False)
    expected = torch.from_numpy(pca.score_samples(_flat(x))).float()
    assert torch.allclose(ppca.exact_log_prob(x), expected, rtol=1e-5, atol=1e-3)
    assert float(ppca.likelihood.variance) == pytest.approx(pca.noise_variance_, rel=1e-5)


def test_ppca_encoder_is_the_exact_posterior(data, ppca):
    x = data.test_inputs(binarize=False)[:20]
    post = _posterior(ppca, x)
    q = ppca.encode(x)
    assert torch.allclose(q.mean.double(), post.mean, atol=1e-4)
    assert torch.allclose(q.variance.double(), post.variance, rtol=1e-4)
    cov = post.covariance_matrix[0]
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=1e-9)   # diagonal indeed


def test_ppca_elbo_is_tight_for_every_sample(data, ppca):
    """With q = p(z|x): log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z."""
    x = data.test_inputs(binarize=False)[:10]
    with torch.no_grad():
        q = ppca.encode(x)
        z = q.sample((50,))                                            # (50, B, d)
        log_w = ppca.decode(z).log_prob(x) + ppca.prior().log_prob(z) - q.log_prob(z)
    exact = ppca.exact_log_prob(x)
    assert torch.allclose(log_w, exact.expand_as(log_w), atol=2e-3)


def test_ppca_is_fitted_without_gradient_steps(data):
    model = _model("ppca")
    cfg = TrainConfig(epochs=5, batch_size=64, eval_batch_size=100)
    history = fit(model, data, cfg, epochs=5, seed=0, binarize=False)
    assert len(history) == 1 and history[0]["epoch"] == 0 and history[0]["step"] == 0
    x = data.test_inputs(binarize=False)
    log_px = model.exact_log_prob(x)
    assert history[0]["test"]["loss"] == pytest.approx(-float(log_px.mean().detach()), rel=1e-5)
    assert history[0]["test"]["log_px"] == pytest.approx(float(log_px.mean().detach()), rel=1e-5)
    # a trainable linear VAE does run its epochs
    assert len(fit(_model("linear_vae"), data, cfg, epochs=2, seed=0, binarize=False)) == 2


def test_linear_vae_exact_log_prob_equals_the_brute_force_marginal():
    torch.manual_seed(0)
    model = _model("linear_vae", likelihood_sigma=0.2)
    x = torch.rand(7, *SHAPE)
    w = model.linear_decoder.weight.detach().double()                  # (D, d)
    mu = model.linear_decoder.bias.detach().double()
    cov = w @ w.T + model.likelihood.variance.detach().double() * torch.eye(D, dtype=torch.float64)
    expected = MultivariateNormal(mu, covariance_matrix=cov).log_prob(x.flatten(1).double())
    assert torch.allclose(model.exact_log_prob(x).double(), expected, atol=1e-4)


def test_linear_vae_elbo_gap_is_the_kl_to_the_exact_posterior():
    """log p(x) = ELBO + KL(q(z|x) || p(z|x)), so ELBO <= log p(x)."""
    torch.manual_seed(1)
    model = _model("linear_vae", likelihood_sigma=0.2).double()
    x = torch.rand(6, *SHAPE, dtype=torch.float64)
    with torch.no_grad():
        q = model.encode(x)
        w, mu = model.linear_decoder.weight, model.linear_decoder.bias
        s2 = model.likelihood.variance
        # E_q |x - W z - mu|^2 = |x - W m - mu|^2 + sum_j s_j^2 |W_j|^2
        sq = ((x.flatten(1) - q.mean @ w.T - mu) ** 2).sum(1) + q.variance @ (w ** 2).sum(0)
        elbo = (-D / 2 * torch.log(2 * math.pi * s2) - sq / (2 * s2)
                - kl_divergence(q, model.prior()))                     # (B,) exact
        log_px = model.exact_log_prob(x)
        q_full = MultivariateNormal(q.mean, covariance_matrix=torch.diag_embed(q.variance))
        gap = kl_divergence(q_full, _posterior(model, x))
        assert torch.allclose(log_px - elbo, gap, rtol=1e-6, atol=1e-8)
        assert torch.all(elbo < log_px)
        # the model's Monte Carlo ELBO estimates the same quantity
        xs = x.repeat(50, 1, 1, 1)                                     # 50 draws per image
        mc = torch.stack([model.loss(xs, 0).terms["elbo"] for _ in range(40)])
    assert abs(float(mc.mean() - elbo.mean())) < 4 * float(mc.std()) / math.sqrt(40)


def test_trained_linear_vae_stays_below_its_exact_likelihood_and_ppca(data, ppca):
    torch.manual_seed(0)
    model = _model("linear_vae", likelihood_sigma=0.3)
    cfg = TrainConfig(epochs=100, batch_size=100, eval_batch_size=200, lr=0.03)
    last = fit(model, data, cfg, epochs=100, seed=0, binarize=False)[-1]
    assert last["test"]["elbo"] <= last["test"]["log_px"]
    x_train = data.train_batch(torch.arange(len(data.x_train)), binarize=False)
    with torch.no_grad():
        lin, best = (float(m.exact_log_prob(x_train).mean()) for m in (model, ppca))
    # PPCA is the maximum-likelihood linear-Gaussian model (up to sklearn's N-1 covariance)
    assert lin <= best + 0.05
    assert lin > best - 1.5, (lin, best)      # and training got the linear VAE close to it


@pytest.mark.parametrize("family, bad, match", [
    ("linear_vae", {"hidden": [8]}, r"models\.m\.hidden"),
    ("linear_vae", {"backbone": "conv64"}, r"models\.m\.backbone"),
    ("linear_vae", {"binarize": True}, r"models\.m\.binarize"),
    ("linear_vae", {"prior": "mog"}, r"models\.m\.prior"),
    ("ppca", {"likelihood": "gaussian_learned"}, r"models\.m\.likelihood"),
])
def test_linear_models_reject_non_linear_options(family, bad, match):
    with pytest.raises(ConfigError, match=match):
        validate_model_config("m", {"family": family, "dataset": "mnist", "latent_dim": 2, **bad})


def test_ppca_encoder_returns_a_diagonal_gaussian(ppca):
    q = ppca.encode(torch.rand(2, *SHAPE))
    assert isinstance(q, Independent) and isinstance(q.base_dist, Normal)
