"""The interface every model variant honours, and the maths they share.

A variant is one file: its config (a pydantic model next to the class) and a
subclass of :class:`Model` that overrides only what differs. docs/model_contract.md
explains every member and who uses it; in short:

=====================  =============================================================
required               ``Config``; ``encode(x) -> Distribution``;
                       ``loss(x, step) -> LossTerms`` (same signature for every model)
defaults               ``build_networks``, ``code_dim``, ``decode``, ``represent``,
                       ``reconstruct``
loop hooks             ``optim_groups``, ``groups_to_step``, ``optim_options``,
                       ``before_fit``, ``after_fit``, ``diagnostics``, ``figures``
capability (mixin)     what the class then implements; who tests for it
``Generative``         ``sample(n)``; figures, samplequality
``LatentPrior``        ``prior()`` (``sample`` follows); traversals
``Probabilistic``      a ``LatentPrior`` whose q(z|x) has a density; loglik, robustness
``ExactLikelihood``    ``exact_log_prob(x)``; loglik's exact reference
``PerDatapoint``       ``training_loss(x, step, index)``; the loop (test terms at the end)
``ClosedForm``         the fit in ``after_fit``; the loop runs no epochs
``SequenceInputs``     nothing; robustness, disentangle, samplequality do not apply
=====================  =============================================================

The mixins live in :mod:`vaebench.models.capabilities`; the loop and the stages test
them with ``isinstance`` / ``issubclass`` and never probe attributes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import PositiveFloat, PositiveInt, model_validator
from torch import nn
from torch.distributions import Distribution, Independent, Normal, constraints

from vaebench.schema import Strict
from vaebench.models.likelihoods import LIKELIHOODS
from vaebench.models.nets import build_backbone, check_hidden


class ModelConfig(Strict):
    """Keys every ``models.<name>`` block has; a family adds its own."""

    family: str
    dataset: str
    backbone: Literal["mlp", "conv64"]
    latent_dim: PositiveInt
    hidden: list[PositiveInt] | None = None   # backbone widths (None: the backbone's default)
    likelihood: Literal["bernoulli", "gaussian", "gaussian_isotropic",
                        "gaussian_learned"] = "bernoulli"     # keys of LIKELIHOODS
    likelihood_sigma: PositiveFloat = 1.0          # gaussian: fixed sigma; gaussian_isotropic: initial
    likelihood_min_variance: PositiveFloat = 1e-3  # floor on a learned sigma^2 (gaussian_isotropic/_learned)
    binarize: bool = True      # dynamic binarisation of training batches (intensity datasets)
    train: dict[str, Any] = {}  # overrides of the ``train`` section for this model

    @model_validator(mode="after")
    def _check_backbone_and_likelihood(self):
        check_hidden(self.backbone, self.hidden)
        LIKELIHOODS[self.likelihood].validate_config(self)
        return self


@dataclass
class LossTerms:
    """What ``Model.loss`` returns: the scalar to minimise and named terms to log, and,
    for a model whose optimiser groups follow different objectives (PIWAE's decoder and
    encoder, FactorVAE's VAE and discriminator), one scalar per group of
    ``Model.optim_groups``."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    group_losses: dict[str, torch.Tensor] = field(default_factory=dict)   # empty: all follow loss

    def backward(self, groups: dict[str, list[nn.Parameter]]) -> None:
        """Accumulate the gradients the training loop steps on: of ``loss``, or, with
        ``group_losses``, each group's parameters from its own objective alone."""
        if not self.group_losses:
            self.loss.backward()
            return
        if set(self.group_losses) != set(groups):
            raise ValueError(f"LossTerms.group_losses names groups {sorted(self.group_losses)}, "
                             f"but optim_groups has {sorted(groups)}")
        last = len(groups) - 1
        for i, (name, params) in enumerate(groups.items()):
            self.group_losses[name].backward(inputs=params, retain_graph=i < last)


class PointMass(Distribution):
    """q(z|x) of a deterministic autoencoder: all mass on the code."""

    arg_constraints = {"loc": constraints.real_vector}
    has_rsample = True

    def __init__(self, loc: torch.Tensor):
        self.loc = loc
        super().__init__(batch_shape=loc.shape[:-1], event_shape=loc.shape[-1:],
                         validate_args=False)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return torch.zeros_like(self.loc)

    def rsample(self, sample_shape=torch.Size()):
        return self.loc.expand(*sample_shape, *self.loc.shape)


def diagonal_gaussian(params: torch.Tensor) -> Independent:
    """Split (..., 2D) encoder output into mean and log-variance: N(mu, diag(exp(logvar)))."""
    mu, logvar = params.chunk(2, dim=-1)
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


class Model(nn.Module):
    """Common interface of every variant (docs/model_contract.md). Subclasses set ``Config``."""

    Config: ClassVar[type[ModelConfig]] = ModelConfig
    enc_out_factor: ClassVar[int] = 1   # encoder outputs enc_out_factor * latent_dim numbers
    # factor in [0, 1] on the KL / log-ratio term, set by the training loop during a KL
    # warm-up (``train.kl_warmup_epochs``); 1 outside training. Families without such a
    # term ignore it.
    kl_anneal: float = 1.0

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.likelihood = LIKELIHOODS[cfg.likelihood](cfg)
        self.encoder, self.decoder = self.build_networks()

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """(encoder, decoder): the shared backbone named by ``cfg.backbone``; a variant
        whose networks do not fit the backbone interface (code grids, sequences)
        builds its own here."""
        cfg = self.cfg
        return build_backbone(cfg.backbone, self.image_shape, self.enc_out_factor * cfg.latent_dim,
                              cfg.latent_dim, self.likelihood.n_maps, cfg.hidden)

    @property
    def code_dim(self) -> int:
        """Length of the code vectors of ``encode`` / ``represent`` / ``decode``."""
        return self.cfg.latent_dim

    def encode(self, x: torch.Tensor) -> Distribution:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z) for codes z (..., D)."""
        return self.likelihood(self.decoder(z))

    def loss(self, x: torch.Tensor, step: int) -> LossTerms:
        raise NotImplementedError

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """Codes for evaluation: the posterior mean."""
        return self.encode(x).mean

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of p(x | z = represent(x))."""
        return self.decode(self.represent(x)).mean

    # --- hooks of the training loop (defaults: one Adam over everything) ----------
    def optim_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameter groups, one optimiser each (e.g. decoder theta / encoder phi)."""
        return {"all": [p for p in self.parameters() if p.requires_grad]}

    def groups_to_step(self, step: int) -> list[str]:
        """Which groups take an optimiser step at ``step`` (alternating updates override)."""
        return list(self.optim_groups())

    def optim_options(self, group: str) -> dict[str, Any]:
        """Adam keyword arguments of ``group`` over the defaults (lr: ``train.lr``), e.g.
        an adversary's own lr and betas; {}: the defaults."""
        return {}

    def before_fit(self, data, binarize: bool) -> None:
        """Called once before the optimisers are built: e.g. to size per-datapoint state,
        or to start the decoder at the data's marginal."""

    def after_fit(self, data, binarize: bool) -> None:
        """Called once after training, e.g. to fit an ex-post density on the codes."""

    # --- what the train stage reports beside the losses -----------------------------
    def diagnostics(self, x: torch.Tensor) -> dict[str, float]:
        """Family-specific numbers on test inputs, written to the train metrics."""
        return {}

    def figures(self, x: torch.Tensor, out_dir) -> list:
        """Family-specific PNGs drawn from test inputs into ``out_dir`` by the train
        stage, beside its reconstructions and samples; returns their paths."""
        return []
