"""FactorVAE (Kim & Mnih 2018): the permutation, the density-ratio TC estimate, the two
objectives and the parameter groups each one trains."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence
from torch.nn import functional as F

from vaebench.config import ConfigError, TrainConfig
from vaebench.data.base import PreparedData
from vaebench.models import build_model, validate_model_config
from vaebench.models.factor_vae import discriminator_loss, permute_dims
from vaebench.train import fit

SHAPE = (1, 28, 28)


def _model(**extra):
    block = {"family": "factor_vae", "dataset": "mnist", "backbone": "mlp", "latent_dim": 2,
             "discriminator_hidden": [3], **extra}
    torch.manual_seed(0)
    return build_model(validate_model_config("m", block), SHAPE)


def _x(n=6):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(3)).round()


def test_permutation_keeps_each_marginal_and_breaks_the_joint():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, generator=g)
    z = torch.stack([a, a, -a], dim=1)                   # perfectly (anti)correlated columns
    zp = permute_dims(z, torch.Generator().manual_seed(1))
    # each column is a rearrangement of itself: the same sorted values
    assert torch.equal(zp.sort(0).values, z.sort(0).values)
    # the columns were permuted independently: correlations of +-1 drop to ~0
    corr = torch.corrcoef(zp.T)
    assert corr[0, 1].abs() < 0.1 and corr[0, 2].abs() < 0.1
    assert torch.corrcoef(z.T)[0, 1] == pytest.approx(1.0)


def test_permutation_stays_within_each_sample_of_a_leading_axis():
    z = torch.arange(2 * 5 * 3, dtype=torch.float).reshape(2, 5, 3)   # (S, M, D)
    zp = permute_dims(z, torch.Generator().manual_seed(0))
    assert torch.equal(zp.sort(1).values, z)             # z is sorted along M already


def _set_discriminator(model):
    """D(z) = W2 leaky_relu(W1 z + b1) + b2 with fixed weights (latent 2, hidden 3)."""
    w1 = torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 0.0]])
    b1 = torch.tensor([0.1, -0.2, 0.3])
    w2 = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 2.0]])
    b2 = torch.tensor([0.25, -0.5])
    lin1, lin2 = model.discriminator[0], model.discriminator[2]
    with torch.no_grad():
        lin1.weight.copy_(w1), lin1.bias.copy_(b1), lin2.weight.copy_(w2), lin2.bias.copy_(b2)
    return w1, b1, w2, b2


def _tc_by_hand(z, w1, b1, w2, b2):
    h = z @ w1.T + b1
    h = torch.where(h > 0, h, 0.2 * h)
    logits = h @ w2.T + b2
    return logits[..., 0] - logits[..., 1]               # log D / (1 - D), D = P(real)


def test_tc_estimate_is_the_logit_difference_of_the_discriminator():
    model = _model(tc_weight=2.0)
    weights = _set_discriminator(model)
    z = torch.tensor([[0.5, -1.0], [2.0, 0.3], [-0.7, 0.0]])
    assert torch.allclose(model.tc(z), _tc_by_hand(z, *weights))
    # the loss is -ELBO + gamma * TC on the same draws (closed-form KL), its logged tc the mean
    x = _x()
    torch.manual_seed(7)
    out = model.loss(x, 0)
    torch.manual_seed(7)
    q = model.encode(x)
    z = q.rsample((1,))
    tc = _tc_by_hand(z, *weights).mean(0)
    nll = -model.decode(z).log_prob(x).mean(0)
    by_hand = (nll + kl_divergence(q, model.prior()) + 2.0 * tc).mean()
    assert out.loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert out.terms["tc"].item() == pytest.approx(tc.mean().item(), rel=1e-5)


@pytest.mark.parametrize("mc_samples", [1, 3])
def test_gamma_zero_gives_the_plain_elbo_loss_on_the_same_samples(mc_samples):
    model = _model(tc_weight=0.0, mc_samples=mc_samples)
    x = _x()
    torch.manual_seed(7)
    out = model.loss(x, 0)
    torch.manual_seed(7)
    ref = model.elbo_loss(model.encode(x), x, 0)         # the VAE's loss
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)
    for k in ("recon", "kl", "elbo"):
        assert out.terms[k].item() == pytest.approx(ref.terms[k].item(), rel=1e-6)


def test_discriminator_loss_is_the_cross_entropy_of_real_against_permuted():
    model = _model()
    weights = _set_discriminator(model)
    z = torch.randn(3, 8, 2, generator=torch.Generator().manual_seed(5))   # (S, M, D)
    ce = discriminator_loss(model.discriminator, z, torch.Generator().manual_seed(9))
    zp = permute_dims(z, torch.Generator().manual_seed(9))
    # softmax over (real, permuted) logits; P(real) = sigmoid(logit difference)
    log_p_real = F.logsigmoid(_tc_by_hand(z, *weights))
    log_p_perm = F.logsigmoid(-_tc_by_hand(zp, *weights))
    assert ce.item() == pytest.approx(-0.5 * (log_p_real.mean() + log_p_perm.mean()).item(),
                                      rel=1e-5)


def _grads(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)


def test_each_objective_trains_only_its_own_group():
    """The gradients the loop steps on (``LossTerms.backward``): the VAE group's are the
    VAE objective's (-ELBO + gamma TC: the TC term leaves D alone), the discriminator's
    the cross-entropy's (which, on detached codes, cannot reach the VAE); the loss's
    value is the VAE objective's."""
    model = _model(tc_weight=5.0)
    groups = model.optim_groups()
    vae, disc = groups["vae"], groups["discriminator"]
    assert {id(p) for p in disc} == {id(p) for p in model.discriminator.parameters()}
    assert len(vae) + len(disc) == len(list(model.parameters()))
    x = _x()
    torch.manual_seed(7)
    out = model.loss(x, 0)
    torch.manual_seed(7)
    vae_out, z = model.vae_loss(model.encode(x), x, 0)
    ce = discriminator_loss(model.discriminator, z)
    assert out.loss.item() == pytest.approx(vae_out.loss.item(), rel=1e-6)
    assert out.terms["disc_loss"].item() == pytest.approx(ce.item(), rel=1e-6)
    of_vae, of_ce = _grads(vae_out.loss, vae), _grads(ce, vae + disc)
    assert all(g is None for g in of_ce[:len(vae)]), "the cross-entropy reaches the VAE"
    model.zero_grad()
    out.backward(groups)                                   # what train.fit calls
    assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(vae, of_vae))
    assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(disc, of_ce[len(vae):]))
    tc_on_d = _grads(vae_out.loss, disc)       # the VAE objective does depend on D ...
    assert any(g is not None and g.abs().sum() > 0 for g in tc_on_d)
    # ... yet D's gradient above is the cross-entropy's alone


def test_one_training_step_moves_both_groups_with_their_own_adam(monkeypatch):
    built = {}

    class Recording(torch.optim.Adam):
        def __init__(self, params, **kw):
            super().__init__(params, **kw)
            built[len(built)] = kw

    model = _model(discriminator_betas=[0.5, 0.9])      # as params.yaml would give them
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    images = _x(8).to(torch.uint8)
    none = torch.zeros(8, 0, dtype=torch.long)
    data = PreparedData("t", {"dataset": "t", "max_value": 1, "image_shape": list(SHAPE)},
                        images, images, images, none, none)
    monkeypatch.setattr(torch.optim, "Adam", Recording)
    fit(model, data, TrainConfig(epochs=1, batch_size=8, lr=1e-3), epochs=1, seed=0,
        binarize=True)
    assert list(built.values()) == [{"lr": 1e-3, "foreach": True},
                                    {"lr": 1e-4, "foreach": True, "betas": (0.5, 0.9)}]
    moved = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert any(k.startswith("discriminator.") for k in moved)
    assert any(k.startswith("encoder.") for k in moved) and any(k.startswith("decoder.")
                                                                 for k in moved)


@pytest.mark.parametrize("bad,key", [({"optimisation": "alternating"}, "optimisation"),
                                     ({"discriminator_betas": [0.5, 1.0]}, "discriminator_betas"),
                                     ({"discriminator_betas": [0.5]}, "discriminator_betas"),
                                     ({"prior": "vamp"}, "prior")])
def test_bad_config_names_the_key(bad, key):
    with pytest.raises(ConfigError, match=f"models.m.{key}"):
        _model(**bad)
