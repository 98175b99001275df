"""VAE trained by stochastic variational inference with per-datapoint variational
parameters (Hoffman, Blei, Wang & Paisley 2013, "Stochastic Variational Inference",
JMLR 14), instead of an amortised encoder (Kingma & Welling 2014).

There is no encoder network. Training example i owns lambda_i = (mu_i, log sigma_i^2),
q_i(z) = N(mu_i, diag(sigma_i^2)), a row of a table indexed by the example's
position in the training set (the loop passes it to ``training_loss``:
the ``PerDatapoint`` capability). Rows start
at the prior N(0, I). One training step on a minibatch (the "SVI step") is:

1. K = ``inner_steps`` steps of Adam (``inner_lr``) ascending
   sum_i ELBO(x_i; theta, lambda_i) in the table rows lambda_i, theta fixed. The
   optimiser is a lazy Adam over the whole table (torch.optim.SparseAdam): only
   the rows of the minibatch move, and each row keeps its Adam moments between
   visits, as it keeps lambda_i;
2. the loss handed to the training loop is -ELBO(x_i; theta, lambda_i) with the
   lambda_i fixed, so the loop's Adam takes the theta step.

New data (the test set, any x given to ``encode``) has no rows: its lambda is
optimised from the prior for ``test_steps`` Adam steps (``test_lr``) with the
decoder fixed, ``test_chunk`` examples at a time, with its own seeded noise so
``encode`` is a deterministic function of x and theta. The decoder's parameters
and their ``.grad`` are never touched by inference.

Cost, against the amortised VAE's one encoder pass: a training step takes
K + 1 decoder forward/backward passes over the minibatch; encoding n new
examples takes ``test_steps`` decoder forward/backward passes over them (every
evaluation that encodes pays this again); memory grows by 2 * latent_dim floats
per training example (three times that with Adam's moments). The table is
allocated by ``before_fit`` (its size is the training set's) and is not part of
the checkpoint: the SVI step's output is theta. The per-epoch test terms are
skipped (``PerDatapoint``); the last epoch's are computed. ``loss(x, step)`` on any
x (the test terms) infers lambda from scratch, as ``encode`` does.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import PositiveFloat, PositiveInt

from vaebench.models.base import diagonal_gaussian
from vaebench.models.capabilities import PerDatapoint
from vaebench.models.vae import VAE, VAEConfig


class SVIVAEConfig(VAEConfig):
    family: Literal["svi_vae"] = "svi_vae"
    gradient: Literal["reparam"] = "reparam"          # lambda and theta steps are pathwise
    optimisation: Literal["joint"] = "joint"          # the SVI step already alternates
    prior: Literal["standard", "gaussian", "mog"] = "standard"   # vamp needs an encoder
    inner_steps: PositiveInt = 2                      # K lambda steps per visit
    inner_lr: PositiveFloat = 0.1
    test_steps: PositiveInt = 200                     # lambda steps for new data
    test_lr: PositiveFloat = 0.05
    test_chunk: PositiveInt = 1000                    # examples optimised together
    test_seed: int = 0                                # noise of test-time inference


class SVIVAE(PerDatapoint, VAE):
    Config = SVIVAEConfig

    def __init__(self, cfg, image_shape):
        super().__init__(cfg, image_shape)
        self.encoder = None  # no amortised encoder: q's parameters are optimised per data point
        self.register_buffer("lam", torch.zeros(0, 2 * cfg.latent_dim), persistent=False)
        self._lam_opt: torch.optim.Optimizer | None = None

    def before_fit(self, data, binarize):
        """One table row per training example, at the prior; one lazy Adam over the table."""
        self.lam = torch.zeros(len(data.x_train), 2 * self.cfg.latent_dim,
                               device=self.lam.device)                   # (N, 2D)
        self._lam_opt = torch.optim.SparseAdam([self.lam], lr=self.cfg.inner_lr)

    def local_elbo(self, x: torch.Tensor, lam: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Monte Carlo ELBO(x_i; theta, lambda_i) per example (B,), reparameterised in lam."""
        q = diagonal_gaussian(lam)
        eps = torch.randn(self.cfg.mc_samples, *lam.shape[:-1], self.cfg.latent_dim,
                          generator=generator, device=lam.device)      # (S, B, D)
        z = q.mean + q.stddev * eps
        return self.decode(z).log_prob(x).mean(0) - self.kl(q, z)

    def step_rows(self, x: torch.Tensor, index: torch.Tensor) -> None:
        """The SVI step's inner loop: ``inner_steps`` Adam steps on the rows ``index``
        (theta fixed). Adam's moments persist per row between visits (SparseAdam)."""
        if self._lam_opt is None or int(index.max()) >= len(self.lam):
            raise RuntimeError("svi_vae: the lambda table is not allocated for these indices; "
                               "before_fit(data, ...) must run before training")
        with torch.enable_grad():
            for _ in range(self.cfg.inner_steps):
                rows = self.lam[index].requires_grad_(True)             # (B, 2D) copy
                grad, = torch.autograd.grad(-self.local_elbo(x, rows).sum(), [rows])
                self.lam.grad = torch.sparse_coo_tensor(index[None], grad, self.lam.shape,
                                                        check_invariants=True)
                self._lam_opt.step()
        self.lam.grad = None

    def refine(self, x: torch.Tensor, lam: torch.Tensor, steps: int, lr: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Maximise sum_i ELBO(x_i; theta, lambda_i) over lam (B, 2D) from scratch with the
        decoder fixed (gradients go to lam only); return the new lam, detached."""
        lam = lam.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([lam], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                lam.grad, = torch.autograd.grad(-self.local_elbo(x, lam, generator).sum(), [lam])
                opt.step()
        return lam.detach()

    def encode(self, x):
        """q(z|x) for new data: lambda fitted from the prior with the decoder fixed."""
        gen = torch.Generator(device=x.device)
        gen.manual_seed(self.cfg.test_seed)
        lam = torch.cat([
            self.refine(xc, torch.zeros(len(xc), 2 * self.cfg.latent_dim, device=x.device),
                        self.cfg.test_steps, self.cfg.test_lr, gen)
            for xc in x.split(self.cfg.test_chunk)])
        return diagonal_gaussian(lam)                                    # (B, D) batch

    def training_loss(self, x, step, index):
        """The SVI step on training examples at positions ``index``: their rows' inner
        steps, then -ELBO with those rows fixed (the loop's Adam steps theta on it)."""
        self.step_rows(x, index)
        return self.elbo_loss(diagonal_gaussian(self.lam[index]), x, step)


MODEL = SVIVAE
