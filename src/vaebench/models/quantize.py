"""Vector quantisation (van den Oord et al. 2017, "Neural Discrete Representation
Learning", arXiv:1711.00937), shared by
``vqvae`` and ``vqvae2``.

A grid of encoder outputs z_e (B, D, h, w) is replaced, position by position, by
its nearest codebook vector e_k, k = argmin_j ||z_e - e_j||^2. The decoder sees
the straight-through estimate z_e + sg[e_k - z_e]: its value is e_k, its gradient
is copied to z_e unchanged. The codebook is learned either

* ``loss``: by the codebook term ||sg[z_e] - e_k||^2 (only the codes move), or
* ``ema``: by exponential moving averages (the paper's appendix; Razavi et al.
  2019): N_k <- g N_k + (1-g) n_k, m_k <- g m_k + (1-g) sum_{i: k_i = k} z_e,i,
  e_k = m_k / N_k (N Laplace-smoothed), with no codebook gradient;

the encoder always pays the commitment beta ||z_e - sg[e_k]||^2. The squared
norms are summed over the grid (per image), like the reconstruction term.

Initialisation: the codes start uniform in [-1/K, 1/K]; the first training
update replaces them by K encoder outputs drawn at random from that batch, so
no code starts far from the data (otherwise most codes sit unused until the
restarts below). Dead codes: a code that no position of a training batch chose for
``dead_code_steps`` consecutive steps is re-initialised to an encoder output
drawn at random from the current batch (its EMA statistics restart there too).
Updates and restarts happen only when the caller asks (the training loss).

Assignments go through one-hot matrix products rather than indexing, so the
codebook gradient is deterministic on accelerators too.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Quantized:
    """What a quantiser returns for one grid."""

    z_q: torch.Tensor         # (B, D, h, w) straight-through quantised grid
    codes: torch.Tensor       # (B, h, w) int64 code indices
    codebook: torch.Tensor    # (B,) ||sg[z_e] - e||^2 summed over the grid (0 under EMA)
    commitment: torch.Tensor  # (B,) ||z_e - sg[e]||^2 summed over the grid
    perplexity: torch.Tensor  # () exp(entropy of the batch's code frequencies)
    usage: torch.Tensor       # () fraction of codes used in the batch


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantisation of (B, D, h, w) grids against K codes of size D."""

    def __init__(self, num_codes: int, dim: int, update: str = "loss", decay: float = 0.99,
                 dead_code_steps: int | None = None, eps: float = 1e-5):
        super().__init__()
        if update not in ("loss", "ema"):
            raise ValueError(f"codebook_update must be 'loss' or 'ema', got {update!r}")
        self.num_codes, self.dim, self.update = num_codes, dim, update
        self.decay, self.dead_code_steps, self.eps = decay, dead_code_steps, eps
        init = torch.empty(num_codes, dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        if update == "loss":
            self.embedding = nn.Parameter(init)                      # (K, D)
        else:
            self.register_buffer("embedding", init)
            self.register_buffer("ema_count", torch.ones(num_codes))  # N_k
            self.register_buffer("ema_sum", init.clone())             # m_k
        self.register_buffer("unused_steps", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(False))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) vectors -> (N,) index of the nearest code (squared Euclidean)."""
        with torch.no_grad():
            e = self.embedding
            dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.T
                    + e.pow(2).sum(1)[None, :])                       # (N, K)
            return dist.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, D, h, w) code vectors."""
        onehot = F.one_hot(codes, self.num_codes).to(self.embedding.dtype)  # (B, h, w, K)
        return (onehot @ self.embedding).permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor, update: bool = False) -> Quantized:
        """Quantise (B, D, h, w); ``update``: apply the EMA step and restarts (training)."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)                 # (N, D), N = B h w
        codes = self.nearest(flat.detach())                            # (N,)
        onehot = F.one_hot(codes, self.num_codes).to(flat.dtype)       # (N, K)
        e = onehot @ self.embedding                                    # (N, D)
        per_image = lambda sq: sq.reshape(b, -1).sum(1)                # (N, D) -> (B,)
        commitment = per_image((flat - e.detach()).pow(2))
        codebook = (per_image((flat.detach() - e).pow(2)) if self.update == "loss"
                    else torch.zeros(b, device=z_e.device))
        freq = onehot.mean(0)                                          # (K,)
        perplexity = torch.exp(-(freq * torch.log(freq + 1e-10)).sum())
        usage = (freq > 0).float().mean()
        if update:
            self._update(flat.detach(), onehot)
        z_q = flat + (e - flat).detach()                               # straight-through
        z_q = z_q.view(b, h, w, d).permute(0, 3, 1, 2)
        return Quantized(z_q, codes.view(b, h, w), codebook, commitment, perplexity, usage)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, onehot: torch.Tensor) -> None:
        """EMA step (``ema``) and dead-code restarts, from one training batch."""
        if not self.initialised:
            self._restart(torch.ones(self.num_codes, dtype=torch.bool, device=flat.device), flat)
            self.initialised.fill_(True)
            return
        counts = onehot.sum(0)                                         # (K,) n_k
        if self.update == "ema":
            g = self.decay
            self.ema_count.mul_(g).add_(counts, alpha=1 - g)
            self.ema_sum.mul_(g).add_(onehot.T @ flat, alpha=1 - g)
            total = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (total + self.num_codes * self.eps) * total
            self.embedding.copy_(self.ema_sum / smoothed[:, None])
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        if self.dead_code_steps is None:
            return
        dead = self.unused_steps >= self.dead_code_steps                # (K,)
        if dead.any():
            self._restart(dead, flat)

    def _restart(self, which: torch.Tensor, flat: torch.Tensor) -> None:
        """Move the codes selected by the (K,) mask onto random rows of flat (N, D)."""
        pick = torch.randint(len(flat), (int(which.sum()),), device=flat.device)
        fresh = flat[pick]                                               # (n, D)
        self.embedding.data[which] = fresh
        if self.update == "ema":
            self.ema_sum[which] = fresh
            self.ema_count[which] = 1.0
        self.unused_steps[which] = 0
