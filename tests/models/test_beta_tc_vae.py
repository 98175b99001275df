"""beta-TCVAE (Chen et al. 2018): the KL's three parts, their minibatch estimators, the loss."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch.distributions import Independent, Normal

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config
from vaebench.models.beta_tc_vae import log_weights

SHAPE = (1, 28, 28)


def _model(latent_dim=4, **extra):
    block = {"family": "beta_tc_vae", "dataset": "mnist", "backbone": "mlp",
             "latent_dim": latent_dim, **extra}
    return build_model(validate_model_config("m", block), SHAPE)


def _x(n=6):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(3)).round()


def _fit_size(model, n):
    """What the training loop does before the first step: hand over the training data."""
    model.before_fit(SimpleNamespace(x_train=torch.empty(n, 0)), binarize=True)   # only len()


@pytest.mark.parametrize("sampling", ["mws", "mss"])
@pytest.mark.parametrize("mc_samples", [1, 3])
def test_unit_weights_give_the_monte_carlo_negative_elbo_on_the_same_samples(sampling, mc_samples):
    """mi + tc + dwkl = log q(z|x) - log p(z) for any estimate q^ of the aggregate
    density (the log q^ terms cancel), so at alpha = beta = gamma = 1 the loss is exactly
    mean_i mean_s [-log p(x_i|z_si) + log q(z_si|x_i) - log p(z_si)] on the same draws."""
    torch.manual_seed(0)
    model = _model(mi_weight=1.0, tc_weight=1.0, dim_kl_weight=1.0, sampling=sampling,
                   mc_samples=mc_samples)
    _fit_size(model, 1000)
    x = _x()
    torch.manual_seed(7)
    out = model.loss(x, 0)
    torch.manual_seed(7)
    q = model.encode(x)
    z = q.rsample((mc_samples,))
    by_hand = (-model.decode(z).log_prob(x) + q.log_prob(z) - model.prior().log_prob(z)).mean()
    assert out.loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    parts = out.terms["mi"] + out.terms["tc"] + out.terms["dwkl"]
    assert parts.item() == pytest.approx((out.loss - out.terms["recon"]).item(), abs=1e-3)
    # the logged ELBO is the VAE's (closed-form KL), not the estimate
    assert torch.allclose(out.terms["elbo"], -(out.terms["recon"] + out.terms["kl"]))


def _log_normal(z, m, s):
    return -0.5 * math.log(2 * math.pi) - math.log(s) - (z - m) ** 2 / (2 * s ** 2)


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_two_points_two_dims_match_the_formulas_by_hand(sampling):
    n_data = 4
    mu = [[0.0, 0.0], [1.0, -1.0]]
    sd = [[1.0, 0.5], [2.0, 1.0]]
    z = [[0.5, 0.2], [0.8, -1.5]]
    # weight of q(.|x_j) in q^(z_i): MWS 1/(N M) for all; MSS (M' = 1) 1/N on itself and
    # (N - M')/(N M') = 3/4 on the other
    w = ([[1 / 8, 1 / 8], [1 / 8, 1 / 8]] if sampling == "mws"
         else [[1 / 4, 3 / 4], [3 / 4, 1 / 4]])
    expected = []
    for i in range(2):
        dens = [[math.exp(_log_normal(z[i][d], mu[j][d], sd[j][d])) for d in range(2)]
                for j in range(2)]                          # dens[j][d] = q(z_id | x_j)
        q_own = dens[i][0] * dens[i][1]
        q_agg = sum(w[i][j] * dens[j][0] * dens[j][1] for j in range(2))
        q_dim = [sum(w[i][j] * dens[j][d] for j in range(2)) for d in range(2)]
        p_dim = [math.exp(_log_normal(z[i][d], 0.0, 1.0)) for d in range(2)]
        expected.append([math.log(q_own / q_agg), math.log(q_agg / (q_dim[0] * q_dim[1])),
                         sum(math.log(q_dim[d] / p_dim[d]) for d in range(2))])
    model = _model(latent_dim=2, sampling=sampling)
    _fit_size(model, n_data)
    q = Independent(Normal(torch.tensor(mu), torch.tensor(sd)), 1)
    mi, tc, dwkl = model.parts(q, torch.tensor(z).unsqueeze(0))
    got = torch.stack([mi[0], tc[0], dwkl[0]], dim=1)
    assert torch.allclose(got, torch.tensor(expected), rtol=1e-4, atol=1e-5)


def _aggregate(correlated: bool, m=800, sd=0.5):
    """Codes of m examples whose means are N(0, 1) per dimension, independent or equal
    across the two dimensions; q(z|x_j) = N(mu_j, sd^2 I), one draw z_j each."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(m, 2, generator=g, dtype=torch.float64)
    mu = u[:, :1].expand(m, 2) if correlated else u
    q = Independent(Normal(mu, torch.full_like(mu, sd)), 1)
    return q, mu + sd * torch.randn(m, 2, generator=g, dtype=torch.float64)


def _tc(sampling, correlated, n_data):
    model = _model(latent_dim=2, sampling=sampling).double()
    _fit_size(model, n_data)
    q, z = _aggregate(correlated)
    return model.parts(q, z.unsqueeze(0))[1].mean().item()


def test_total_correlation_of_a_factorised_q_is_near_zero_and_of_a_correlated_one_is_not():
    """Aggregate posteriors N(0, 1.25 I) and N(0, [[1.25, 1], [1, 1.25]]) (correlation 0.8):
    their TCs are 0 and -1/2 log(1 - 0.8^2) = 0.511 nats. MSS from 800 codes recovers both."""
    exact = -0.5 * math.log(1 - 0.8 ** 2)
    assert abs(_tc("mss", False, 10**6)) < 0.03
    assert _tc("mss", True, 10**6) == pytest.approx(exact, abs=0.06)


def test_mws_total_correlation_carries_its_known_offset():
    """MWS's q^ = 1/(N M) sum_j q(z|x_j) is ~ q(z)/N when the posteriors overlap (the
    paper calls the estimator biased), so its TC is the true one plus (D - 1) log N."""
    n_data = 10**6
    assert _tc("mws", False, n_data) - math.log(n_data) == pytest.approx(0.0, abs=0.03)
    exact = -0.5 * math.log(1 - 0.8 ** 2)
    assert _tc("mws", True, n_data) - math.log(n_data) == pytest.approx(exact, abs=0.06)


def test_stratified_weights_are_a_mixture_and_weighted_ones_sum_to_one_over_n():
    n = torch.tensor(50)
    mss = log_weights(5, n, "mss").exp()
    assert torch.allclose(mss.sum(1), torch.ones(5))
    assert torch.allclose(torch.diagonal(mss), torch.full((5,), 1 / 50))
    assert mss[0, 1].item() == pytest.approx((50 - 4) / (50 * 4))
    assert mss[4, 0].item() == pytest.approx((50 - 4) / (50 * 4))
    assert mss[0, 2].item() == pytest.approx(1 / 4)
    assert torch.allclose(log_weights(5, n, "mws").exp().sum(1), torch.full((5,), 1 / 50))
    # N unknown (0, a model outside training) or smaller than the batch: the batch is the set
    unknown = log_weights(5, torch.tensor(0), "mws").exp()
    assert torch.allclose(unknown.sum(1), torch.full((5,), 0.2))
    assert torch.equal(log_weights(1, n, "mss"), torch.zeros(1, 1))


def test_dataset_size_comes_from_the_training_data_and_travels_with_the_checkpoint():
    model = _model()
    assert int(model.dataset_size) == 0
    _fit_size(model, 737)
    assert int(model.state_dict()["dataset_size"]) == 737
    fresh = _model()
    fresh.load_state_dict(model.state_dict())
    assert int(fresh.dataset_size) == 737


def test_kl_warmup_scales_the_whole_decomposed_penalty():
    torch.manual_seed(0)
    model = _model()
    _fit_size(model, 1000)
    x, out = _x(), {}
    for a in (0.0, 0.5, 1.0):
        model.kl_anneal = a
        torch.manual_seed(1)
        out[a] = model.loss(x, 0)
    t = out[1.0].terms
    penalty = 1.0 * t["mi"] + 6.0 * t["tc"] + 1.0 * t["dwkl"]
    for a in (0.0, 0.5, 1.0):
        assert out[a].loss.item() == pytest.approx((t["recon"] + a * penalty).item(), rel=1e-4)


def test_score_function_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    model = _model(gradient="score_function", mc_samples=2, baseline="leave_one_out")
    _fit_size(model, 1000)
    model.loss(_x(), 0).loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_a_non_factorised_prior_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"models\.m\.prior"):
        _model(prior="mog")
