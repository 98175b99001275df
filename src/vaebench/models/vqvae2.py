"""VQ-VAE-2 (Razavi et al. 2019, "Generating Diverse High-Fidelity Images with
VQ-VAE-2", arXiv:1906.00446): a two-level hierarchy of
code grids.

    h_b = Enc_b(x)                        bottom features, (H, W) / 2^n
    e_t = VQ_t(Enc_t(h_b))                top codes, half the bottom grid (rounded up)
    e_b = VQ_b(W [h_b ; Dec_t(e_t)])      bottom codes, conditioned on the top
    p(x | e_t, e_b) = Dec([Up(e_t) ; e_b])

with n = len(hidden). The top level halves the bottom grid with a 3x3 stride-2
conv and its transposes restore the exact size (output padding for even
sides), so odd grids work too: MNIST gives a 7x7 bottom and a 4x4 top grid.
Both levels share K and D and pay their own codebook and commitment terms (or
EMA updates). Loss, sampling, the bound and the prior's training are VQ-VAE's,
run over the two grids; the prior is p(c_top) p(c_bottom | c_top)
(:class:`vaebench.models.code_prior.CodePrior`), so

    -log p(x) <= -log p(x | c_top, c_bottom) - log p(c_top) - log p(c_bottom | c_top).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from vaebench.models.nets import GridDecoder, GridEncoder
from vaebench.models.vqvae import VQVAE, VQVAEConfig


class VQVAE2Config(VQVAEConfig):
    family: Literal["vqvae2"] = "vqvae2"


class VQVAE2(VQVAE):
    Config = VQVAE2Config
    level_names = ("_top", "_bottom")

    def grid_shapes(self):
        (h, w), = super().grid_shapes()
        return [((h + 1) // 2, (w + 1) // 2), (h, w)]

    def _up(self, c_in: int, c_out: int) -> nn.ConvTranspose2d:
        """Top grid -> bottom grid exactly (3x3, stride 2, output padding for even sides)."""
        (h, w), = super().grid_shapes()
        return nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=(1 - h % 2, 1 - w % 2))

    def build_networks(self):
        c, d, w = self.image_shape[0], self.cfg.latent_dim, self.widths[-1]
        encoder = nn.ModuleDict({
            "bottom": GridEncoder(c, self.widths, w),                   # x -> h_b
            "top": nn.Sequential(                                       # h_b -> z_e top
                nn.Conv2d(w, w, 3, 2, 1), nn.ReLU(), nn.Conv2d(w, d, 1)),
            "top_dec": nn.Sequential(                                   # e_t -> bottom grid
                nn.Conv2d(d, w, 3, padding=1), nn.ReLU(), self._up(w, w)),
            "bottom_in": nn.Conv2d(2 * w, d, 1),                        # [h_b ; Dec_t(e_t)]
        })
        decoder = nn.ModuleDict({
            "up": self._up(d, d),                                       # e_t -> bottom grid
            "main": GridDecoder(2 * d, self.widths, c * self.likelihood.n_maps),
        })
        return encoder, decoder

    def quantize(self, x, update=False):
        enc = self.encoder
        h_b = enc["bottom"](x)                                          # (B, w, h, w)
        top = self.quantizers[0](enc["top"](h_b), update)              # (B, D, h/2, w/2)
        cond = torch.cat([h_b, enc["top_dec"](top.z_q)], 1)             # (B, 2w, h, w)
        bottom = self.quantizers[1](enc["bottom_in"](cond), update)    # (B, D, h, w)
        return [top, bottom]

    def decoder_logits(self, grids):
        top, bottom = grids
        return self.decoder["main"](torch.cat([self.decoder["up"](top), bottom], 1))


MODEL = VQVAE2
