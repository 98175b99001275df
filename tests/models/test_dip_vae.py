"""DIP-VAE-I / -II (Kumar et al. 2018): the covariance penalty, by hand and at its zero."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent, Normal

from vaebench.config import ConfigError
from vaebench.models import build_model, validate_model_config

SHAPE = (1, 28, 28)


def _model(latent_dim=2, **extra):
    block = {"family": "dip_vae", "dataset": "mnist", "backbone": "mlp",
             "latent_dim": latent_dim, **extra}
    return build_model(validate_model_config("m", block), SHAPE)


def _q(mu, var):
    mu, var = torch.tensor(mu), torch.tensor(var)
    return Independent(Normal(mu, var.sqrt()), 1)


# four means with mean 0 and population covariance exactly I
CORNERS = [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]


def test_penalty_is_zero_when_the_batch_covariance_is_the_identity():
    assert _model(variant="i").penalty(_q(CORNERS, [[0.3, 0.3]] * 4)).item() == 0.0
    # II counts the posterior variances too: Cov[mu] = 0.75 I plus E[Sigma] = 0.25 I
    shrunk = [[0.75 ** 0.5 * v for v in row] for row in CORNERS]
    assert _model(variant="ii").penalty(_q(shrunk, [[0.25, 0.25]] * 4)).item() == pytest.approx(
        0.0, abs=1e-6)
    # ... while I, on the means alone, sees diagonal 0.75: lambda_d * 2 * 0.25^2
    assert _model(variant="i", lambda_od=1.0, lambda_d=3.0).penalty(
        _q(shrunk, [[0.25, 0.25]] * 4)).item() == pytest.approx(3.0 * 2 * 0.0625, rel=1e-5)


def test_two_by_two_penalty_matches_the_hand_computation():
    """mu = (0, 0), (2, 1): mean (1, 0.5), Cov[mu] = [[1, 0.5], [0.5, 0.25]] (divisor 2).
    I  (lambda_od 2, lambda_d 3): 2 * 2 * 0.5^2 + 3 * (0^2 + 0.75^2) = 1 + 1.6875.
    II adds E[Sigma] = diag(0.5, 0.75): diagonal (1.5, 1.0) -> 1 + 3 * 0.5^2 = 1.75."""
    q = _q([[0.0, 0.0], [2.0, 1.0]], [[0.5, 1.0], [0.5, 0.5]])
    weights = {"lambda_od": 2.0, "lambda_d": 3.0}
    assert _model(variant="i", **weights).penalty(q).item() == pytest.approx(2.6875)
    assert _model(variant="ii", **weights).penalty(q).item() == pytest.approx(1.75)


def test_lambda_d_defaults_to_the_papers_ratio_per_variant():
    assert _model(variant="i", lambda_od=5.0).lambda_d == 50.0
    assert _model(variant="ii", lambda_od=5.0).lambda_d == 5.0
    assert _model(variant="ii", lambda_od=5.0, lambda_d=7.0).lambda_d == 7.0


@pytest.mark.parametrize("variant", ["i", "ii"])
def test_loss_is_the_negative_elbo_plus_the_penalty_on_the_same_samples(variant):
    torch.manual_seed(0)
    model = _model(latent_dim=4, variant=variant)
    x = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(3)).round()
    torch.manual_seed(7)
    out = model.loss(x, 0)
    q = model.encode(x)
    penalty = model.penalty(q)
    assert out.terms["dip_penalty"].item() == pytest.approx(penalty.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx((out.terms["recon"] + out.terms["kl"] + penalty).item(),
                                            rel=1e-5)
    model.kl_anneal = 0.5        # a KL warm-up tempers the KL term, not the penalty
    torch.manual_seed(7)
    warm = model.loss(x, 0)
    assert warm.loss.item() == pytest.approx(
        (out.terms["recon"] + 0.5 * out.terms["kl"] + penalty).item(), rel=1e-5)


def test_an_unknown_variant_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"models\.m\.variant"):
        _model(variant="iii")
