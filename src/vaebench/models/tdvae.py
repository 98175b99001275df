"""TD-VAE (Gregor et al. 2019, "Temporal Difference Variational Auto-Encoder",
arXiv:1806.03107), with one layer of latents.

x is a batch of sequences (B, T, H, W), time on the channel axis. A frame
network (the ``backbone`` encoder, per frame) feeds an LSTM whose output is the
belief state b_t, a summary of x_1..x_t. Four distributions, all diagonal
Gaussians except the decoder:

    p_B(z_t | b_t)                 belief over the state at t
    p_T(z_t2 | z_t1, t2 - t1)      jumpy transition, a residual step
                                   N(z_t1 + f(z_t1, d), .) that sees the jump
                                   d / max_jump when ``jump_input`` (the paper's
                                   p_T(z_t2 | z_t1) otherwise)
    q_S(z_t1 | z_t2, b_t1, b_t2)   smoothing posterior
    p_D(x_t | z_t)                 decoder (the backbone decoder, Bernoulli)

Training draws per sequence ``pairs_per_sequence`` jumps d ~ U{1..max_jump}
and times t1 ~ U{1..T-d}, t2 = t1 + d (the paper draws one pair; more pairs
reuse the beliefs, cost little and average out noise), samples
z_t2 ~ p_B(.|b_t2), z_t1 ~ q_S(.|z_t2, b_t1, b_t2) and maximises the TD-VAE
objective

    log p_D(x_t2|z_t2) + log p_B(z_t1|b_t1) + log p_T(z_t2|z_t1)
      - log p_B(z_t2|b_t2) - log q_S(z_t1|z_t2,b_t1,b_t2),

with E_q[log p_B(z_t1|b_t1) - log q_S(z_t1|..)] = -KL(q_S || p_B) taken in
closed form and the rest from the one reparameterised sample.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from vaebench.schema import ConfigError
from vaebench.models.base import LossTerms, Model, ModelConfig, diagonal_gaussian
from vaebench.models.capabilities import SequenceInputs
from vaebench.models.nets import build_backbone


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                         nn.Tanh(), nn.Linear(hidden, n_out))


def _at(seq: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """seq (B, T, D) at times t (K, B) -> (K * B, D), as a one-hot contraction
    (deterministic gradients on every device, unlike a scatter)."""
    onehot = F.one_hot(t, seq.shape[1]).to(seq.dtype)                 # (K, B, T)
    return torch.einsum("kbt,btd->kbd", onehot, seq).flatten(0, 1)


class TDVAEConfig(ModelConfig):
    family: Literal["tdvae"] = "tdvae"
    latent_dim: PositiveInt = 8           # size of the state z_t
    frame_dim: PositiveInt = 64           # per-frame features fed to the LSTM
    belief_dim: PositiveInt = 64          # size of b_t
    net_hidden: PositiveInt = 64          # width of the p_B, p_T and q_S networks
    max_jump: PositiveInt = 4             # t2 - t1 is drawn from {1, ..., max_jump}
    pairs_per_sequence: PositiveInt = 1   # (t1, t2) pairs drawn per sequence and step
    jump_input: bool = True
    eval_context: PositiveInt = 4         # frames seen before predicting (evaluation)
    eval_horizons: list[PositiveInt] = Field(default=[1, 2, 4, 8], min_length=1)
    eval_samples: PositiveInt = 8         # rollouts averaged into one prediction


class TDVAE(SequenceInputs, Model):
    Config = TDVAEConfig

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        t = self.seq_len
        if cfg.max_jump >= t:
            raise ConfigError(f"max_jump {cfg.max_jump} must be below the sequence length {t}")
        if cfg.eval_context + max(cfg.eval_horizons) > t:
            raise ConfigError(f"eval_context {cfg.eval_context} + largest eval_horizons "
                              f"{max(cfg.eval_horizons)} exceeds the sequence length {t}")
        z, b, h = cfg.latent_dim, cfg.belief_dim, cfg.net_hidden
        self.lstm = nn.LSTM(cfg.frame_dim, b, batch_first=True)
        self.belief_net = _mlp(b, h, 2 * z)
        self.transition_net = _mlp(z + int(cfg.jump_input), h, 2 * z)
        self.smoothing_net = _mlp(z + 2 * b, h, 2 * z)

    @property
    def seq_len(self) -> int:
        return self.image_shape[0]

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return (1, *self.image_shape[1:])

    def build_networks(self):
        """Per-frame backbone: frame -> frame_dim features, z -> frame logits."""
        cfg = self.cfg
        return build_backbone(cfg.backbone, self.frame_shape, cfg.frame_dim, cfg.latent_dim,
                              self.likelihood.n_maps, cfg.hidden)

    # --- the four distributions -----------------------------------------------------
    def beliefs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T', H, W) -> (B, T', belief_dim): b_t after seeing x_1..x_t."""
        b, t = x.shape[:2]
        feats = self.encoder(x.reshape(b * t, *self.frame_shape)).view(b, t, -1)
        return self.lstm(feats)[0]

    def p_belief(self, b):
        return diagonal_gaussian(self.belief_net(b))

    def p_transition(self, z, jump):
        """N(z + f_mu(z, d), diag exp f_logvar(z, d)): a residual step from z_t1."""
        inp = z
        if self.cfg.jump_input:
            d = torch.as_tensor(jump, dtype=z.dtype, device=z.device) / self.cfg.max_jump
            inp = torch.cat([z, d.expand(*z.shape[:-1]).unsqueeze(-1)], -1)
        mu, logvar = self.transition_net(inp).chunk(2, dim=-1)
        return diagonal_gaussian(torch.cat([z + mu, logvar], -1))

    def p_frame(self, z):
        """p_D(x_t | z_t) for states (..., Z): a Bernoulli over one frame (1, H, W)."""
        return self.likelihood(self.decoder(z))

    def q_smoothing(self, z2, b1, b2):
        return diagonal_gaussian(self.smoothing_net(torch.cat([z2, b1, b2], -1)))

    # --- the objective ----------------------------------------------------------------
    def td_terms(self, x, beliefs, t1, jump) -> dict[str, torch.Tensor]:
        """Terms (K * B,) of the TD-VAE objective for K pairs (t1, t1 + jump) per sequence;
        x (B, T, H, W), beliefs (B, T, belief_dim), t1 and jump (K, B)."""
        t2 = t1 + jump
        b1, b2 = _at(beliefs, t1), _at(beliefs, t2)                     # (KB, belief_dim)
        x2 = x[torch.arange(x.shape[0], device=x.device).expand_as(t2), t2]  # (K, B, H, W)
        pb2 = self.p_belief(b2)
        z2 = pb2.rsample()                                               # (KB, Z)
        qs = self.q_smoothing(z2, b1, b2)
        z1 = qs.rsample()
        recon = -self.p_frame(z2).log_prob(x2.flatten(0, 1).unsqueeze(1))  # -log p_D(x_t2|z_t2)
        kl = kl_divergence(qs, self.p_belief(b1))                        # closed form
        transition = pb2.log_prob(z2) - self.p_transition(z1, jump.flatten()).log_prob(z2)
        return {"recon": recon, "kl_smoothing": kl, "transition": transition,
                "td_elbo": -(recon + kl + transition)}

    def loss(self, x, step):
        b, t = x.shape[:2]
        pairs = (self.cfg.pairs_per_sequence, b)
        jump = torch.randint(1, self.cfg.max_jump + 1, pairs, device=x.device)
        t1 = (torch.rand(pairs, device=x.device) * (t - jump)).long()    # t1 + jump <= T - 1
        terms = self.td_terms(x, self.beliefs(x), t1, jump)
        return LossTerms(-terms["td_elbo"].mean(), {k: v.mean() for k, v in terms.items()})

    # --- the Model interface and evaluation ----------------------------------------
    @property
    def code_dim(self) -> int:
        return self.seq_len * self.cfg.latent_dim

    def encode(self, x):
        """The filtering beliefs prod_t p_B(z_t | b_t) over all T states, flattened (B, T*Z)."""
        belief = self.p_belief(self.beliefs(x)).base_dist            # (B, T, Z)
        return Independent(Normal(belief.loc.flatten(1), belief.scale.flatten(1)), 1)

    def decode(self, z):
        """States (..., T*Z) -> prod_t p_D(x_t | z_t), a Bernoulli over the sequence (T, H, W)."""
        lead, t = z.shape[:-1], self.seq_len
        logits = self.decoder(z.reshape(*lead, t, -1))                # (..., T, 1, H, W)
        return self.likelihood(logits.flatten(-4, -3))

    @torch.no_grad()
    def predict(self, x, context: int, horizons: list[int], n_samples: int) -> torch.Tensor:
        """(len(horizons), B, H, W): mean over rollouts of p_D(x_{context+h} | z), each
        rollout z ~ p_B(.|b_context) followed by jumps of at most max_jump."""
        z0 = self.p_belief(self.beliefs(x[:, :context])[:, -1]).sample((n_samples,))  # (S, B, Z)
        preds = []
        for h in horizons:
            z, left = z0, h
            while left:
                jump = min(left, self.cfg.max_jump)
                z, left = self.p_transition(z, jump).sample(), left - jump
            preds.append(self.p_frame(z).mean.mean(0)[:, 0])
        return torch.stack(preds)

    @torch.no_grad()
    def diagnostics(self, x):
        from vaebench.models.tdvae_eval import sequence_metrics
        return sequence_metrics(self, x, self.cfg.eval_context, self.cfg.eval_horizons,
                                self.cfg.eval_samples)

    def figures(self, x, out_dir):
        from vaebench.models.tdvae_eval import save_rollout_figure
        return [save_rollout_figure(self, x, Path(out_dir) / "rollouts.png")]


MODEL = TDVAE
