"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation
Learning", arXiv:1711.00937).

A conv encoder maps x to a grid z_e (B, D, h, w); each position is replaced by
its nearest code (:mod:`vaebench.models.quantize`) and a conv decoder gives a
Bernoulli p(x | z_q). The loss is

    -log p(x | z_q) + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2

(the codebook term is dropped when ``codebook_update: ema``). After training,
``after_fit`` fits an autoregressive prior p(c) over the code indices
(:mod:`vaebench.models.code_prior`), which makes the model a sampler and gives
the bound -log p(x) <= -log p(x | z_q(c)) - log p(c) with c the codes of x (q is
a point mass on c, so the ELBO is exactly that; :meth:`VQVAE.nll_bound`).

``encode`` is a point mass on the quantised grid flattened, (B, D*h*w);
``represent`` is that same vector and ``decode`` takes it back. The class is
written over a list of code grids (top first) so that VQ-VAE-2 overrides only
its networks.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import nn
from tqdm.auto import tqdm

from vaebench.schema import ConfigError
from vaebench.models.base import LossTerms, Model, ModelConfig, PointMass
from vaebench.models.capabilities import Generative
from vaebench.models.code_prior import CodePrior, CodePriorConfig
from vaebench.models.nets import GridDecoder, GridEncoder
from vaebench.models.quantize import Quantized, VectorQuantizer


class VQVAEConfig(ModelConfig):
    family: Literal["vqvae"] = "vqvae"
    backbone: Literal["conv"] = "conv"   # GridEncoder / GridDecoder
    latent_dim: PositiveInt = 16         # D, the size of one code vector
    # hidden: widths of the stride-2 convs (None: the family's default)
    codebook_size: int = Field(64, ge=2, description="K, the number of codes")
    codebook_update: Literal["loss", "ema"] = "loss"
    commitment: NonNegativeFloat = 0.25  # beta
    ema_decay: float = Field(0.99, gt=0, lt=1)
    dead_code_steps: PositiveInt | None = 100   # None: never restart unused codes
    code_prior: CodePriorConfig = Field(
        CodePriorConfig(), description="the PixelCNN prior over the code indices and its "
                                       "training; a VAE's prior names p(z)")
    renamed = {"prior": "code_prior"}


class VQVAE(Generative, Model):
    Config = VQVAEConfig
    default_widths: ClassVar[tuple[int, ...]] = (16, 32)
    level_names: ClassVar[tuple[str, ...]] = ("",)   # suffixes of logged terms, top first

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.quantizers = nn.ModuleList(
            VectorQuantizer(cfg.codebook_size, cfg.latent_dim, cfg.codebook_update,
                            cfg.ema_decay, cfg.dead_code_steps) for _ in self.level_names)
        self.code_prior = CodePrior(cfg.codebook_size, self.grid_shapes(), cfg.code_prior)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.cfg.hidden or self.default_widths)

    def grid_shapes(self) -> list[tuple[int, int]]:
        """(h, w) of each code grid, top first: here one grid, the image / 2^len(widths)."""
        h, w = self.image_shape[1:]
        n = len(self.widths)
        if h % 2 ** n or w % 2 ** n:
            raise ConfigError(f"hidden {list(self.widths)}: {n} stride-2 convs need image "
                              f"sides divisible by {2 ** n}, got {h}x{w}; use fewer widths")
        return [(h >> n, w >> n)]

    def build_networks(self):
        c, d = self.image_shape[0], self.cfg.latent_dim
        return (GridEncoder(c, self.widths, d),
                GridDecoder(d, self.widths, c * self.likelihood.n_maps))

    # --- the two halves, over a list of grids (top first) ---------------------------
    def quantize(self, x: torch.Tensor, update: bool = False) -> list[Quantized]:
        return [self.quantizers[0](self.encoder(x), update)]

    def decoder_logits(self, grids: list[torch.Tensor]) -> torch.Tensor:
        return self.decoder(grids[0])

    # --- the Model interface ----------------------------------------------------------
    @property
    def code_dim(self) -> int:
        return self.cfg.latent_dim * sum(h * w for h, w in self.grid_shapes())

    def encode(self, x):
        return PointMass(torch.cat([q.z_q.flatten(1) for q in self.quantize(x)], 1))

    def decode(self, z):
        d, lead = self.cfg.latent_dim, z.shape[:-1]
        sizes = [d * h * w for h, w in self.grid_shapes()]
        parts = z.reshape(-1, z.shape[-1]).split(sizes, dim=1)
        grids = [p.view(-1, d, h, w) for p, (h, w) in zip(parts, self.grid_shapes())]
        out = self.decoder_logits(grids)
        return self.likelihood(out.view(*lead, *out.shape[1:]))

    def loss(self, x, step):
        qs = self.quantize(x, update=self.training)
        recon = -self.likelihood(self.decoder_logits([q.z_q for q in qs])).log_prob(x)  # (B,)
        codebook = sum(q.codebook for q in qs)                                       # (B,)
        commitment = sum(q.commitment for q in qs)
        loss = (recon + codebook + self.cfg.commitment * commitment).mean()
        terms = {"recon": recon.mean(), "codebook": codebook.mean(),
                 "commitment": commitment.mean()}
        for name, q in zip(self.level_names, qs):
            terms[f"perplexity{name}"], terms[f"usage{name}"] = q.perplexity, q.usage
        return LossTerms(loss, terms)

    def optim_groups(self):
        prior = {id(p) for p in self.code_prior.parameters()}   # trained in after_fit
        return {"all": [p for p in self.parameters() if p.requires_grad and id(p) not in prior]}

    @torch.no_grad()
    def sample(self, n):
        codes = self.code_prior.sample(n)
        grids = [vq.lookup(c) for vq, c in zip(self.quantizers, codes)]
        return self.likelihood(self.decoder_logits(grids)).mean

    @torch.no_grad()
    def nll_bound(self, x):
        qs = self.quantize(x)
        recon = -self.likelihood(self.decoder_logits([q.z_q for q in qs])).log_prob(x)
        code = -self.code_prior.log_prob([q.codes for q in qs])
        return {"recon_nll": recon, "code_nll": code, "total": recon + code}

    def after_fit(self, data, binarize):
        """Fit the code prior on the codes of the (dynamically binarised) training set."""
        cfg, was_training = self.cfg.code_prior, self.training
        self.eval()                                  # the autoencoder stays fixed
        opt = torch.optim.Adam(self.code_prior.parameters(), lr=cfg.lr)
        for _ in tqdm(range(cfg.epochs), desc="code prior", disable=None, leave=False):
            for idx in torch.randperm(len(data.x_train), device=data.device).split(cfg.batch_size):
                with torch.no_grad():
                    codes = [q.codes for q in self.quantize(data.train_batch(idx, binarize))]
                loss = -self.code_prior.log_prob(codes).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.train(was_training)

    @torch.no_grad()
    def diagnostics(self, x, batch_size: int = 500):
        """Test-set means of the bound and its parts (nats), and codebook use per level."""
        sums = {"recon_nll": 0.0, "code_nll": 0.0, "total": 0.0}
        counts = [torch.zeros(self.cfg.codebook_size, device=x.device) for _ in self.quantizers]
        for xb in x.split(batch_size):
            for k, v in self.nll_bound(xb).items():
                sums[k] += float(v.sum())
            for c, q in zip(counts, self.quantize(xb)):
                c += torch.nn.functional.one_hot(q.codes.flatten(), len(c)).sum(0)
        out = {("nll_bound" if k == "total" else k): v / len(x) for k, v in sums.items()}
        for name, c in zip(self.level_names, counts):
            p = c / c.sum()
            out[f"perplexity{name}"] = float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))
            out[f"usage{name}"] = float((c > 0).float().mean())
        return out


MODEL = VQVAE
