"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising", arXiv:1802.05983).

The VAE's negative ELBO plus gamma (``tc_weight``) times an estimate of the total
correlation of the aggregate posterior, TC = KL(q(z) || prod_d q(z_d)). A discriminator D
with two logits (real: z ~ q(z); permuted: z ~ prod_d q(z_d)) estimates the density ratio:

    TC ~ E_q(z)[log D(z) / (1 - D(z))] = E_q(z)[logit_real(z) - logit_permuted(z)]

Samples of prod_d q(z_d) come from the batch itself: each dimension of the codes is
permuted independently across the batch, which keeps every dimension's marginal and
breaks their dependence (the paper's Algorithm 2 draws them from a second batch; one
batch, as in disentanglement_lib, costs half). D is trained by cross-entropy to tell
the two apart.

The TC integrand logit_real(z_i) - logit_permuted(z_i) depends on each example's own
sample z_i, so it joins the ELBO's integrand and goes through the VAE's estimator
machinery (``expected``) like any other term; a KL warm-up tempers it with the KL.

Two objectives, two parameter groups (``optim_groups``), each group's gradient from
its own objective (``LossTerms.group_losses``):

* the VAE (encoder, decoder, prior) minimises  -ELBO + gamma TC (the logged loss);
  the TC term does not train D;
* D minimises the cross-entropy on detached codes, so it does not train the VAE.

The discriminator has its own Adam settings (``optim_options``): the paper's lr 1e-4 and
betas (0.5, 0.9), and the paper's MLP, 6 hidden layers of 1000 leaky-ReLU units.
The logged ``tc`` is the discriminator's estimate, ``disc_loss`` its cross-entropy.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import nn
from torch.nn import functional as F

from vaebench.models.base import LossTerms
from vaebench.models.vae import VAE, VAEConfig

REAL, PERMUTED = 0, 1   # the discriminator's two classes (logit columns)
AdamBeta = Annotated[float, Field(ge=0.0, lt=1.0)]


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each dimension of codes (..., M, D) permuted independently across the batch axis M:
    a sample of prod_d q(z_d) from one of q(z)."""
    order = torch.rand(z.shape, generator=generator, device=z.device).argsort(dim=-2)
    return z.gather(-2, order)


def discriminator_net(latent_dim: int, hidden: list[int]) -> nn.Sequential:
    """MLP latent_dim -> hidden... -> 2 logits (real, permuted), leaky ReLU (slope 0.2)."""
    dims, layers = [latent_dim, *hidden], []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(dims[-1], 2))


def tc_estimate(logits: torch.Tensor) -> torch.Tensor:
    """log D / (1 - D) per code from the discriminator's logits (..., 2)."""
    return logits[..., REAL] - logits[..., PERMUTED]


def discriminator_loss(disc: nn.Module, z: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean cross-entropy of telling codes z (..., M, D) (real) from their permutation."""
    real, perm = z.reshape(-1, z.shape[-1]), permute_dims(z, generator).reshape(-1, z.shape[-1])
    labels = torch.full((2 * len(real),), REAL, device=z.device)
    labels[len(real):] = PERMUTED
    return F.cross_entropy(disc(torch.cat([real, perm])), labels)


class FactorVAEConfig(VAEConfig):
    family: Literal["factor_vae"] = "factor_vae"
    prior: Literal["standard", "gaussian"] = "standard"   # closed-form KL beside the integrand
    optimisation: Literal["joint"] = "joint"   # the VAE and D step together (optim_groups)
    tc_weight: NonNegativeFloat = Field(
        35.0, description="the weight of the total correlation estimate; gamma in Kim & Mnih 2018")
    discriminator_hidden: list[PositiveInt] = [1000] * 6
    discriminator_lr: PositiveFloat = 1e-4
    discriminator_betas: Annotated[list[AdamBeta], Field(min_length=2, max_length=2)] = [0.5, 0.9]
    renamed = {**VAEConfig.renamed, "gamma": "tc_weight"}


class FactorVAE(VAE):
    Config = FactorVAEConfig

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.discriminator = discriminator_net(cfg.latent_dim, cfg.discriminator_hidden)

    def tc(self, z: torch.Tensor) -> torch.Tensor:
        """TC integrand per code (..., M)."""
        return tc_estimate(self.discriminator(z))

    def vae_loss(self, q, x, step) -> tuple[LossTerms, torch.Tensor]:
        """(the VAE's objective -ELBO + gamma TC with its terms, the codes it sampled)."""
        weight, seen = self.kl_weight_at(step), {}

        def integrand(z):                                  # (S, M, D) -> (S, M)
            log_px_z, tc = self.decode(z).log_prob(x), self.tc(z)
            seen.update(z=z.detach(), recon=-log_px_z.detach().mean(0), tc=tc.detach().mean(0))
            return log_px_z - weight * self.cfg.tc_weight * tc

        kl = self.kl(q)                                    # (M,), closed form
        loss = (-self.expected(q, integrand) + weight * kl).mean()
        recon, kl = seen["recon"], kl.detach()
        return LossTerms(loss, {"recon": recon.mean(), "kl": kl.mean(),
                                "elbo": -(recon + kl).mean(), "tc": seen["tc"].mean()}), seen["z"]

    def loss(self, x, step):
        out, z = self.vae_loss(self.encode(x), x, step)
        ce = discriminator_loss(self.discriminator, z)               # z is detached
        return LossTerms(out.loss, {**out.terms, "disc_loss": ce.detach()},
                         group_losses={"vae": out.loss, "discriminator": ce})

    def optim_groups(self):
        disc = {id(p) for p in self.discriminator.parameters()}
        return {"vae": [p for p in self.parameters() if p.requires_grad and id(p) not in disc],
                "discriminator": list(self.discriminator.parameters())}

    def groups_to_step(self, step):
        return ["vae", "discriminator"]

    def optim_options(self, group):
        cfg = self.cfg
        return ({"lr": cfg.discriminator_lr, "betas": tuple(cfg.discriminator_betas)}
                if group == "discriminator" else {})


MODEL = FactorVAE
