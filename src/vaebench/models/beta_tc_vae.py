"""beta-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in Variational
Autoencoders", arXiv:1802.04942).

The ELBO's KL term, averaged over the data n, splits into three parts
(the paper's decomposition), with q(z) = (1/N) sum_n q(z|n) the aggregate posterior:

    E_n KL(q(z|n) || p(z)) = I_q(z; n)                       index-code MI
                           + KL(q(z) || prod_d q(z_d))       total correlation (TC)
                           + sum_d KL(q(z_d) || p(z_d))      dimension-wise KL

and the loss weights them alpha, beta, gamma (``mi_weight``, ``tc_weight``,
``dim_kl_weight``; defaults 1, 6, 1: only the TC weighted up, as in the paper;
disentanglement_lib sweeps beta in 1..10 with alpha = gamma = 1,
Locatello et al. 2019, arXiv:1811.12359). Per example i with
its sample z_i ~ q(z|x_i), the integrand is

    mi_i   = log q(z_i|x_i) - log q^(z_i)
    tc_i   = log q^(z_i) - sum_d log q^(z_id)
    dwkl_i = sum_d [log q^(z_id) - log p(z_id)]

where q^ estimates the aggregate density from the minibatch of size M drawn from N
training examples (``sampling``):

* ``mws`` -- minibatch-weighted sampling: q^(z) = 1/(N M) sum_j q(z|x_j); the paper
  notes it is biased (its expectation is a lower bound on E log q(z)). Where the
  posteriors overlap, q^ ~ q(z) / N, so the logged parts carry offsets of about
  log N (mi), (D - 1) log N (tc) and -D log N (dwkl); their sum does not.
* ``mss`` -- minibatch-stratified sampling (the paper's appendix): weight 1/N on the
  example's own q(z|x_i), (N - M')/(N M') on one other example and 1/M' on the
  M' - 1 rest, M' = M - 1; the weights sum to 1.

The three parts telescope: mi_i + tc_i + dwkl_i = log q(z_i|x_i) - log p(z_i) whatever
q^ is, so with alpha = beta = gamma = 1 the loss is exactly the single-sample negative
ELBO with a Monte Carlo KL on the same z (what the tests check).

Each integrand depends on its own z_i only (and on every q(.|x_j) of the batch through
the encoder): the decomposition is the batch-coupled ``penalty`` of the VAE's
``penalised_loss``, which runs it through the family's estimator (``expected``) with the
KL weight and warm-up like any other per-sample term: reparam or score-function
gradients both apply.

N is the training set's size, which the training loop hands to ``before_fit``; it is a
buffer, so a checkpoint keeps it. Until then (a model built outside training) and for
a batch larger than N, the batch counts as the whole data set (N = M). The logged
``elbo`` is the true ELBO (closed-form KL) so variants compare; ``mi``, ``tc`` and
``dwkl`` are the estimates above.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, NonNegativeFloat

from vaebench.models.vae import VAE, VAEConfig


def log_weights(batch: int, dataset_size: torch.Tensor, sampling: str) -> torch.Tensor:
    """(M, M) log-weights w_ij of q(z_i | x_j) in q^(z_i) = sum_j w_ij q(z_i | x_j);
    ``dataset_size`` is a 0-dim tensor N (kept on the device: no synchronisation)."""
    device = dataset_size.device
    n = torch.clamp(dataset_size.float(), min=batch)               # N >= M (see module doc)
    if sampling == "mws":
        return (-torch.log(n * batch)).expand(batch, batch)
    if batch == 1:                  # no other example to stratify with: q^ = q(z|x)
        return torch.zeros(1, 1, device=device)
    m = batch - 1
    w = torch.full((batch, batch), 1.0 / m, device=device)
    idx = torch.arange(batch, device=device)
    w[idx, (idx + 1) % batch] = (n - m) / (n * m)                 # the one stratified other
    w[idx, idx] = 1.0 / n                                          # the example itself
    return w.log()


def decompose(log_q_pairs: torch.Tensor, log_p: torch.Tensor,
              log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mi, tc, dwkl), each (S, M), from log q(z_sid | x_j) (S, M, M, D) (sample s of
    example i, dimension d, under example j's posterior), log p(z_sid) (S, M, D) and
    the log-weights (M, M) of :func:`log_weights`."""
    own = torch.diagonal(log_q_pairs, dim1=1, dim2=2).sum(1)               # (S, M): log q(z_i|x_i)
    log_qz = torch.logsumexp(log_q_pairs.sum(-1) + log_w, dim=-1)          # (S, M)
    log_qz_d = torch.logsumexp(log_q_pairs + log_w[..., None], dim=-2)     # (S, M, D)
    return own - log_qz, log_qz - log_qz_d.sum(-1), (log_qz_d - log_p).sum(-1)


class BetaTCVAEConfig(VAEConfig):
    family: Literal["beta_tc_vae"] = "beta_tc_vae"
    prior: Literal["standard", "gaussian"] = "standard"   # factorised: p(z_d) is defined
    mi_weight: NonNegativeFloat = Field(
        1.0, description="the weight of the index-code mutual information; "
                         "alpha in Chen et al. 2018")
    tc_weight: NonNegativeFloat = Field(
        6.0, description="the weight of the total correlation; beta in Chen et al. 2018")
    dim_kl_weight: NonNegativeFloat = Field(
        1.0, description="the weight of the dimension-wise KL; gamma in Chen et al. 2018")
    sampling: Literal["mws", "mss"] = "mws"
    renamed = {**VAEConfig.renamed, "alpha": "mi_weight", "beta": "tc_weight",
               "gamma": "dim_kl_weight"}


class BetaTCVAE(VAE):
    Config = BetaTCVAEConfig

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.register_buffer("dataset_size", torch.tensor(0))   # N; 0: not yet known

    def before_fit(self, data, binarize):
        super().before_fit(data, binarize)
        self.dataset_size.fill_(len(data.x_train))

    def parts(self, q, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mi, tc, dwkl) per sample (S, M) of codes z (S, M, D) drawn from q (M examples)."""
        log_q_pairs = q.base_dist.log_prob(z.unsqueeze(-2))               # (S, M, M, D)
        log_p = self.prior().base_dist.log_prob(z)                         # (S, M, D)
        log_w = log_weights(z.shape[-2], self.dataset_size, self.cfg.sampling)
        return decompose(log_q_pairs, log_p, log_w)

    def elbo_loss(self, q, x, step):
        """The weighted decomposition in place of the KL (the VAE's ``penalised_loss``)."""
        cfg = self.cfg

        def penalty(z):                                    # (S, M, D) -> (S, M)
            mi, tc, dwkl = self.parts(q, z)
            total = cfg.mi_weight * mi + cfg.tc_weight * tc + cfg.dim_kl_weight * dwkl
            return total, {"mi": mi, "tc": tc, "dwkl": dwkl}

        return self.penalised_loss(q, x, step, penalty)


MODEL = BetaTCVAE
