"""The VAE's ``penalised_loss``: a per-sample penalty, possibly coupled across the batch
through every example's q(z|x_j), goes through the family's estimator with the KL weight,
on the samples of the reconstruction term."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence


def aggregate(q):
    """A batch-coupled penalty of beta-TCVAE's kind: -log (1/B) sum_j q(z_i|x_j), which
    depends on example i's own codes and on every example's posterior."""
    def penalty(z):                                                  # (S, B, D) -> (S, B)
        log_q_pairs = q.base_dist.log_prob(z.unsqueeze(-2)).sum(-1)  # (S, B, B)
        total = -(torch.logsumexp(log_q_pairs, -1) - torch.log(torch.tensor(z.shape[-2])))
        return total, {"neg_log_qz": total}
    return penalty


def test_a_batch_coupled_penalty_is_weighted_and_logged_on_the_reconstruction_samples(tiny):
    model = tiny.model("vae", mc_samples=2)
    x = tiny.data().test_inputs(True)[:5]
    q = model.encode(x)
    model.kl_anneal = 0.25
    torch.manual_seed(3)
    out = model.penalised_loss(q, x, 0, aggregate(q))
    torch.manual_seed(3)
    z = q.rsample((2,))                                              # the estimator's draws
    recon = -model.decode(z).log_prob(x).mean(0)                     # (B,)
    penalty = aggregate(q)(z)[0].mean(0)                             # (B,)
    kl = kl_divergence(q, model.prior())                             # not a part: closed form
    torch.testing.assert_close(out.loss, (recon + 0.25 * penalty).mean())
    assert list(out.terms) == ["recon", "kl", "elbo", "neg_log_qz"]
    torch.testing.assert_close(out.terms["neg_log_qz"], penalty.mean())
    torch.testing.assert_close(out.terms["kl"], kl.mean())
    torch.testing.assert_close(out.terms["elbo"], -(recon + kl).mean())


@pytest.mark.parametrize("gradient", ["reparam", "score_function"])
def test_the_coupling_reaches_the_other_examples_posteriors_under_either_estimator(tiny, gradient):
    """Example 0's penalty alone, with the reconstruction term switched off, still moves
    the other examples' posterior means (through q(z_0|x_j))."""
    model = tiny.model("vae", gradient=gradient, mc_samples=2)
    x = tiny.data().test_inputs(True)[:4]
    q = model.encode(x)
    coupled = aggregate(q)
    model.decode = lambda z: Independent(Normal(torch.zeros(*z.shape[:-1], *x.shape[1:]), 1.0), 3)
    first_only = lambda z: (coupled(z)[0] * torch.tensor([1.0, 0.0, 0.0, 0.0]), {})  # noqa: E731
    out = model.penalised_loss(q, x, 0, first_only)
    grad, = torch.autograd.grad(out.loss, [q.base_dist.loc])
    assert (grad[1:].abs().sum(-1) > 0).all()
