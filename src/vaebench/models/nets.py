"""Shared backbones: the MLP of the IWAE paper and the 64x64 conv net of the
disentanglement literature. A backbone maps images to a flat vector and a
flat vector back to ``out_channels`` image-shaped maps (likelihood parameters).
GridEncoder / GridDecoder keep the spatial layout instead (the code grids of VQ models).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


class MLPEncoder(nn.Sequential):
    """(B, C, H, W) -> (B, out_dim): 784-200-200-out with tanh (Burda et al. 2016)."""

    def __init__(self, image_shape, out_dim: int, hidden=(200, 200)):
        dims = [math.prod(image_shape), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        super().__init__(*layers, nn.Linear(dims[-1], out_dim))


class MLPDecoder(nn.Module):
    """(B, latent) -> (B, out_channels * C, H, W), mirror of :class:`MLPEncoder`."""

    def __init__(self, latent_dim: int, image_shape, out_channels: int = 1, hidden=(200, 200)):
        super().__init__()
        self.out_shape = (out_channels * image_shape[0], *image_shape[1:])
        dims = [latent_dim, *reversed(hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], math.prod(self.out_shape)))

    def forward(self, z):
        return self.net(z).view(*z.shape[:-1], *self.out_shape)


class Conv64Encoder(nn.Sequential):
    """(B, C, 64, 64) -> (B, out_dim): four 4x4 stride-2 convs (32, 32, 64, 64), fc 256
    (the encoder of Higgins et al. 2017 / Burgess et al. 2018 used by disentanglement_lib)."""

    n_hidden = 1   # ``hidden`` is the width of the one fc layer

    def __init__(self, image_shape, out_dim: int, hidden=(256,)):
        c = image_shape[0]
        super().__init__(
            nn.Conv2d(c, 32, 4, 2, 1), nn.ReLU(),    # 32x32
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),   # 16x16
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),   # 8x8
            nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),   # 4x4
            nn.Flatten(), nn.Linear(64 * 4 * 4, hidden[0]), nn.ReLU(),
            nn.Linear(hidden[0], out_dim))


class Conv64Decoder(nn.Module):
    """(B, latent) -> (B, out_channels * C, 64, 64), the transpose of :class:`Conv64Encoder`."""

    def __init__(self, latent_dim: int, image_shape, out_channels: int = 1, hidden=(256,)):
        super().__init__()
        c = out_channels * image_shape[0]
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden[0]), nn.ReLU(),
            nn.Linear(hidden[0], 64 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),  # 8x8
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),  # 16x16
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),  # 32x32
            nn.ConvTranspose2d(32, c, 4, 2, 1))              # 64x64

    def forward(self, z):
        lead = z.shape[:-1]
        out = self.net(z.reshape(-1, z.shape[-1]))
        return out.view(*lead, *out.shape[1:])


class GridEncoder(nn.Sequential):
    """(B, c_in, H, W) -> (B, c_out, H / 2^n, W / 2^n): n = len(widths) 4x4 stride-2
    convs, a 3x3 conv, a 1x1 projection."""

    def __init__(self, c_in: int, widths, c_out: int):
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.Conv2d(c_in, w, 4, 2, 1), nn.ReLU()]
            c_in = w
        super().__init__(*layers, nn.Conv2d(c_in, c_in, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c_in, c_out, 1))


class GridDecoder(nn.Sequential):
    """(B, c_in, h, w) -> (B, c_out, 2^n h, 2^n w), the mirror of :class:`GridEncoder`."""

    def __init__(self, c_in: int, widths, c_out: int):
        chans = list(reversed(widths))
        layers: list[nn.Module] = [nn.Conv2d(c_in, chans[0], 3, padding=1), nn.ReLU()]
        for a, b in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU()]
        super().__init__(*layers, nn.ConvTranspose2d(chans[-1], c_out, 4, 2, 1))


def _check_conv64(image_shape):
    if tuple(image_shape[1:]) != (64, 64):
        raise ValueError(f"backbone 'conv64' needs 64x64 images, got {tuple(image_shape)}")


def check_hidden(name: str, hidden) -> None:
    """Can backbone ``name`` be built with these ``hidden`` widths? An encoder class
    with ``n_hidden`` takes exactly that many (conv64: its one fc width); ``mlp`` takes
    any number, ``[]`` being a single linear layer image -> code (a shallow
    autoencoder). ``None`` is always the backbone's default."""
    if name not in BACKBONES:   # a variant that builds its own networks (build_networks)
        return
    n = getattr(BACKBONES[name][0], "n_hidden", None)
    if hidden is not None and n is not None and len(hidden) != n:
        raise ValueError(f"backbone {name!r} takes {n} hidden width(s), got {list(hidden)}")


# name -> (encoder class, decoder class, default hidden sizes, shape check)
BACKBONES: dict[str, tuple[type, type, tuple[int, ...], Callable | None]] = {
    "mlp": (MLPEncoder, MLPDecoder, (200, 200), None),
    "conv64": (Conv64Encoder, Conv64Decoder, (256,), _check_conv64),
}


def build_backbone(name: str, image_shape, enc_out: int, latent_dim: int,
                   dec_channels: int = 1, hidden: tuple[int, ...] | None = None):
    """(encoder: x -> (B, enc_out), decoder: z -> (B, dec_channels*C, H, W))."""
    enc_cls, dec_cls, default_hidden, check = BACKBONES[name]
    if check:
        check(image_shape)
    check_hidden(name, hidden)
    hidden = tuple(default_hidden if hidden is None else hidden)   # (): no hidden layer (linear MLP)
    return (enc_cls(image_shape, enc_out, hidden),
            dec_cls(latent_dim, image_shape, dec_channels, hidden))
