"""VQ-VAE-2 (Razavi et al. 2019, "Generating Diverse High-Fidelity Images with
VQ-VAE-2"; seed 001_ac8decc5d88a2813.txt lists it): a two-level hierarchy of
code grids.

    h_b = Enc_b(x)                        bottom features, H / 2^n
    e_t = VQ_t(Enc_t(h_b))                top codes,       H / 2^(n+1)
    e_b = VQ_b(W [h_b ; Dec_t(e_t)])      bottom codes, conditioned on the top
    p(x | e_t, e_b) = Dec([Up(e_t) ; e_b])

with n = len(hidden). Both levels share the codebook size K and dimension D
and pay their own codebook and commitment terms (or EMA updates). Everything
else -- loss, sampling, the bound, the prior's training -- is VQ-VAE's, run
over the two grids; the prior is the hierarchy p(c_top) p(c_bottom | c_top) of
:class:`vaebench.models.code_prior.CodePrior`, so

    -log p(x) <= -log p(x | c_top, c_bottom) - log p(c_top) - log p(c_bottom | c_top).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from vaebench.models.vqvae import GridDecoder, GridEncoder, VQVAE, VQVAEConfig


class VQVAE2Config(VQVAEConfig):
    family: Literal["vqvae2"] = "vqvae2"


class VQVAE2(VQVAE):
    Config = VQVAE2Config
    default_widths = (32,)
    level_names = ("_top", "_bottom")

    def downsampling(self):
        return [len(self.widths) + 1, len(self.widths)]

    def build_networks(self):
        c, d, w = self.image_shape[0], self.cfg.latent_dim, self.widths[-1]
        encoder = nn.ModuleDict({
            "bottom": GridEncoder(c, self.widths, w),     # x -> h_b
            "top": GridEncoder(w, [w], d),                # h_b -> z_e top
            "top_dec": GridDecoder(d, [w], w),            # e_t -> bottom resolution
            "bottom_in": nn.Conv2d(2 * w, d, 1),          # [h_b ; Dec_t(e_t)] -> z_e bottom
        })
        decoder = nn.ModuleDict({
            "up": nn.ConvTranspose2d(d, d, 4, 2, 1),      # e_t -> bottom resolution
            "main": GridDecoder(2 * d, self.widths, c * self.likelihood.n_maps),
        })
        return encoder, decoder

    def quantize(self, x, update=False):
        enc = self.encoder
        h_b = enc["bottom"](x)                                            # (B, w, h, w)
        top = self.quantizers[0](enc["top"](h_b), update)                # (B, D, h/2, w/2)
        cond = torch.cat([h_b, enc["top_dec"](top.z_q)], 1)               # (B, 2w, h, w)
        bottom = self.quantizers[1](enc["bottom_in"](cond), update)      # (B, D, h, w)
        return [top, bottom]

    def decoder_logits(self, grids):
        top, bottom = grids
        return self.decoder["main"](torch.cat([self.decoder["up"](top), bottom], 1))
