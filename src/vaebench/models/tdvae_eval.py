"""TD-VAE's own evaluation on moving sprites: its ``diagnostics`` and ``figures`` (the train
stage writes both), kept beside the model so that models/ never imports evaluate/.

* the TD-VAE objective at one-step jumps, averaged over every t (nats per
  predicted frame), with its parts;
* jumpy prediction error: after ``context`` frames, roll the model forward h
  steps (:meth:`vaebench.models.tdvae.TDVAE.predict`) and take the per-pixel
  squared error of its predicted frame against the true frame context - 1 + h
  (0-based), for each horizon h, beside the copy-the-last-frame baseline and the
  per-pixel marginal (the best guess that ignores the sequence), and the model's gain
  over the copy baseline with its paired standard error over sequences;
* a rollout figure (truth above, prediction below, per sequence).

The error functions are pure functions over arrays; the model-facing wrappers
only draw the predictions.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from vaebench import io


def _check(x: np.ndarray, context: int, horizons) -> None:
    if x.ndim != 4:
        raise ValueError(f"sequences must be (N, T, H, W), got shape {x.shape}")
    if context < 1 or context + max(horizons) > x.shape[1]:
        raise ValueError(f"context {context} + horizon {max(horizons)} does not fit "
                         f"sequences of length {x.shape[1]}")


def prediction_mse(pred: np.ndarray, x: np.ndarray, context: int, horizons) -> dict[int, float]:
    """pred (len(horizons), N, H, W) against x (N, T, H, W): mean squared pixel error per h."""
    _check(x, context, horizons)
    return {h: float(np.mean((p - x[:, context - 1 + h]) ** 2)) for h, p in zip(horizons, pred)}


def copy_gain(pred: np.ndarray, x: np.ndarray, context: int, horizons
              ) -> dict[int, tuple[float, float]]:
    """Per h: mean over sequences of (copy-last error - prediction error), per-pixel
    squared errors, and its paired standard error over sequences (the report's claims
    test the model against the baseline with it)."""
    _check(x, context, horizons)
    last = x[:, context - 1]
    out = {}
    for h, p in zip(horizons, pred):
        target = x[:, context - 1 + h]
        gain = (((last - target) ** 2) - ((p - target) ** 2)).reshape(len(x), -1).mean(1)
        se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else float("nan")
        out[h] = (float(gain.mean()), se)
    return out


def copy_last_mse(x: np.ndarray, context: int, horizons) -> dict[int, float]:
    """The baseline that predicts every future frame to be the last one seen."""
    last = x[:, context - 1]
    return prediction_mse(np.stack([last] * len(horizons)), x, context, horizons)


def marginal_mse(x: np.ndarray, context: int, horizons) -> dict[int, float]:
    """The best prediction that ignores the sequence: each pixel's mean over the
    sequences at that time (a reference level; a model that has learnt nothing
    about the dynamics sits here, and copying the last frame can do worse)."""
    _check(x, context, horizons)
    pred = np.stack([np.broadcast_to(x[:, context - 1 + h].mean(0), x[:, 0].shape)
                     for h in horizons])
    return prediction_mse(pred, x, context, horizons)


@torch.no_grad()
def step_objective(model, x: torch.Tensor, batch_size: int = 256) -> dict[str, float]:
    """Means over sequences and t of the one-step TD-VAE terms (nats per frame)."""
    sums: dict[str, float] = defaultdict(float)
    steps = x.shape[1] - 1
    for xb in x.split(batch_size):
        beliefs = model.beliefs(xb)
        t1 = torch.arange(steps, device=xb.device)[:, None].expand(steps, len(xb))  # (T-1, B)
        for k, v in model.td_terms(xb, beliefs, t1, torch.ones_like(t1)).items():
            sums[k] += float(v.sum())
    return {f"{k}_step": v / (len(x) * steps) for k, v in sums.items()}


def sequence_metrics(model, x: torch.Tensor, context: int, horizons, n_samples: int,
                     batch_size: int = 256) -> dict[str, float]:
    """Everything above on test sequences x (N, T, H, W), flat for the metrics file."""
    horizons = sorted(horizons)
    pred = torch.cat([model.predict(xb, context, horizons, n_samples)
                      for xb in x.split(batch_size)], dim=1).cpu().numpy()
    xs = x.cpu().numpy()
    out = step_objective(model, x, batch_size)
    for h, err in prediction_mse(pred, xs, context, horizons).items():
        out[f"pred_mse_h{h}"] = err
    for h, err in copy_last_mse(xs, context, horizons).items():
        out[f"copy_mse_h{h}"] = err
    for h, err in marginal_mse(xs, context, horizons).items():
        out[f"marginal_mse_h{h}"] = err
    for h, (gain, se) in copy_gain(pred, xs, context, horizons).items():
        out[f"copy_gain_h{h}"], out[f"copy_gain_stderr_h{h}"] = gain, se
    return out


def save_rollout_figure(model, x: torch.Tensor, path: str | Path, n_sequences: int = 4,
                        context: int | None = None, n_samples: int | None = None) -> Path:
    """PNG of ``n_sequences`` test sequences: the truth, then the frames the model
    predicts after seeing the first ``context`` (shown as seen, framed in grey)."""
    context = context or model.cfg.eval_context
    x = x[:n_sequences]
    t = x.shape[1]
    horizons = list(range(1, t - context + 1))
    pred = model.predict(x, context, horizons, n_samples or model.cfg.eval_samples).cpu()
    rows = []
    for i in range(len(x)):
        rows += [("truth", x[i].cpu()), ("TD-VAE", torch.cat([x[i, :context].cpu(), pred[:, i]]))]
    fig = Figure(figsize=(0.8 * t, 0.85 * len(rows)))
    axes = fig.subplots(len(rows), t, squeeze=False)
    for r, (label, frames) in enumerate(rows):
        for c in range(t):
            ax = axes[r, c]
            ax.imshow(frames[c].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if label != "truth" and c < context:
                for s in ax.spines.values():
                    s.set_edgecolor("0.6")
                    s.set_linewidth(2)
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
            if r == 0:
                ax.set_title(f"t={c + 1}", fontsize=7)
    fig.suptitle(f"TD-VAE rollouts after {context} frames (grey frame: observed)", fontsize=8)
    path = Path(path)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
