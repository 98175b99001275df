"""The one training loop, and the ``train@<model>`` stage around it.

Every family trains here: Adam, minibatches sliced from tensors that already
sit on the device, the model's ``loss`` as the only objective. A variant that
needs more (alternating theta/phi updates, an ex-post density) says so through
the hooks of :class:`vaebench.models.base.Model` and the capabilities it declares
(:mod:`vaebench.models.capabilities`), never through attribute probes here.
"""
from __future__ import annotations

import csv
import math
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vaebench import io
from vaebench.checkpoints import save_checkpoint
from vaebench.config import ConfigError, Params
from vaebench.data import PreparedData, load_prepared
from vaebench.devices import seed_everything
from vaebench.models import MODELS, Model, build_model
from vaebench.models.capabilities import ClosedForm, PerDatapoint
from vaebench.runs import timestamp
from vaebench.sections.train import TrainConfig
from vaebench.stage import Clock, StageContext, checked_model
from vaebench.stats import summarise


# Adam updates all tensors of a group with torch's multi-tensor (foreach) kernels: one call
# per update instead of a Python loop over the tensors (torch's default on CUDA, not on the
# CPU, where the loop cost ~15% of an MLP step); the updates are bit-identical to the loop's.
ADAM_OPTIONS = {"foreach": True}

# What the stage writes into its folders (it replaces only folders holding just these).
MODEL_FILES = ("seed*.pt", "config.json")
CURVE_FILES = ("seed*.csv",)


def _accumulate(sums: dict, terms: dict[str, torch.Tensor], loss: torch.Tensor, n: int) -> None:
    sums["loss"] += loss.detach() * n
    for k, v in terms.items():
        sums[k] += v.detach() * n


def evaluate_terms(model: Model, x: torch.Tensor, batch_size: int, step: int) -> dict[str, float]:
    """Mean loss and named terms of ``model.loss`` over ``x`` (eval mode)."""
    model.eval()
    sums: dict = defaultdict(float)
    # a loss that differentiates inside (CAE's Jacobian, SVI's local steps, a score-function
    # baseline) turns autograd back on itself with torch.enable_grad()
    with torch.no_grad():
        for xb in x.split(batch_size):
            out = model.loss(xb, step)
            _accumulate(sums, out.terms, out.loss, len(xb))
    model.train()
    return {k: float(v) / len(x) for k, v in sums.items()}


class Diverged(ArithmeticError):
    """Training left the finite numbers: a non-finite loss, or parameters that a
    distribution or the post-fit step refuses."""


def _diverged(epoch: int, step: int, loss: float) -> Diverged:
    return Diverged(f"training diverged at epoch {epoch}, step {step} (loss = {loss})")


def _distribution_refused(model: Model, err: ValueError) -> bool:
    """Whether ``err`` is torch.distributions refusing out-of-support parameters (an
    overflowed scale, NaN weights) rather than a bug to show as it is."""
    return (str(err).startswith("Expected parameter")
            or not all(bool(torch.isfinite(p).all()) for p in model.parameters()))


def fit(model: Model, data: PreparedData, cfg: TrainConfig, *, epochs: int, seed: int,
        binarize: bool, desc: str = "train") -> list[dict]:
    """Train ``model`` in place; return one row per epoch with train and test terms."""
    gen = torch.Generator(device=data.device)
    gen.manual_seed(seed)
    model.before_fit(data, binarize)
    epochs = 0 if isinstance(model, ClosedForm) else epochs   # fitted in after_fit
    # per-datapoint state: training passes the examples' positions; inference on new
    # data is an optimisation, so the test terms wait for the last epoch
    per_datapoint = isinstance(model, PerDatapoint)
    groups = model.optim_groups() if epochs else {}
    opts = {name: torch.optim.Adam(params, **{"lr": cfg.lr, **ADAM_OPTIONS,
                                              **model.optim_options(name)})
            for name, params in groups.items()}
    x_test = data.test_inputs(binarize)
    n, step, history = len(data.x_train), 0, []
    warmup = cfg.warmup_steps(-(-n // cfg.batch_size))     # steps of the KL warm-up (0: off)
    model.train()
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=None, leave=False)
    for epoch in bar:
        sums: dict = defaultdict(float)
        # first step of the epoch with a non-finite loss, kept on the device: read once
        # per epoch with the sums, so the check costs no synchronisation per step
        bad_step = torch.tensor(-1, device=data.device)
        t0 = time.perf_counter()
        for idx in torch.randperm(n, generator=gen, device=data.device).split(cfg.batch_size):
            x = data.train_batch(idx, binarize, gen)
            model.kl_anneal = min(1.0, (step + 1) / warmup) if warmup else 1.0
            try:
                out = (model.training_loss(x, step, idx) if per_datapoint
                       else model.loss(x, step))
            except ValueError as err:   # torch.distributions refuses NaN / inf parameters
                if not _distribution_refused(model, err):
                    raise
                first = int(bad_step)
                raise _diverged(epoch, first if first >= 0 else step, float("nan")) from err
            for opt in opts.values():
                opt.zero_grad(set_to_none=True)
            out.backward(groups)     # each group's gradient (models.base.LossTerms)
            for name in model.groups_to_step(step):
                opts[name].step()
            _accumulate(sums, out.terms, out.loss, len(idx))
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(out.loss.detach()),
                                   step, bad_step)
            step += 1
        train_row = {k: float(v) / n for k, v in sums.items()}
        if not math.isfinite(train_row["loss"]):
            raise _diverged(epoch, int(bad_step), train_row["loss"])
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "step": step, "seconds": seconds,
                        "examples_per_s": n / seconds, "train": train_row,
                        "test": evaluate_terms(model, x_test, cfg.eval_batch_size, step)
                        if not per_datapoint or epoch == epochs else {}})
        bar.set_postfix(loss=f"{train_row['loss']:.2f}")
    model.kl_anneal = 1.0
    t0 = time.perf_counter()
    try:
        model.after_fit(data, binarize)
    except ValueError as err:   # e.g. an ex-post mixture on overflowed codes
        first = str(err).strip().splitlines()[0]
        raise Diverged(f"the fit after training failed after {epochs} epoch(s), {step} steps "
                       f"(training may have diverged): {first}") from err
    if not history:  # nothing trained by gradient: one row, evaluated after the fit
        seconds = time.perf_counter() - t0
        x_train = data.train_batch(torch.arange(n, device=data.device), binarize, gen)
        history.append({"epoch": 0, "step": 0, "seconds": seconds, "examples_per_s": n / seconds,
                        "train": evaluate_terms(model, x_train, cfg.eval_batch_size, 0),
                        "test": evaluate_terms(model, x_test, cfg.eval_batch_size, 0)})
    return history


def _curves_csv(path: Path, history: list[dict]) -> None:
    keys = sorted({k for row in history for split in ("train", "test") for k in row[split]})
    with io.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", *[f"{s}_{k}" for s in ("train", "test") for k in keys]])
        for row in history:
            w.writerow([row["epoch"], row["step"],
                        *[f"{row[s].get(k, float('nan')):.6g}" for s in ("train", "test")
                          for k in keys]])


def train_stage(cfg: Params, name: str, data_dir: Path, out_dir: Path, metrics_path: Path,
                plots_dir: Path, figures_dir: Path | None = None) -> dict:
    """``train@<name>``: train the model once per seed; write checkpoints, curves, metrics,
    and (first seed) figures of reconstructions and samples."""
    mcfg, tcfg = checked_model(cfg, "train", name), cfg.model_train(name)
    ctx = StageContext.create(cfg, "train", name, tcfg)   # device: the model's train overrides first
    device = ctx.device
    data = load_prepared(data_dir, device)
    if data.meta["dataset"] != mcfg.dataset:
        raise ConfigError(f"models.{name}.dataset is {mcfg.dataset!r} but {data_dir} holds "
                          f"{data.meta['dataset']!r}")
    # closed-form models run no epochs; record what actually ran
    epochs = 0 if issubclass(MODELS[mcfg.family], ClosedForm) else tcfg.epochs_for(mcfg.dataset)
    per_seed = {}
    with io.atomic_dir(out_dir, MODEL_FILES) as out_tmp, \
            io.atomic_dir(plots_dir, CURVE_FILES) as plots_tmp:
        for seed in cfg.seeds:
            started = timestamp()
            seed_everything(seed, tcfg.deterministic, device)
            model = build_model(mcfg, data.image_shape).to(device)
            clock = Clock()
            try:
                with clock.part("fit"):
                    history = fit(model, data, tcfg, epochs=epochs, seed=seed,
                                  binarize=mcfg.binarize, desc=f"{name} seed {seed}")
            except Diverged as err:
                raise ConfigError(f"models.{name} (seed {seed}): {err}; try a smaller "
                                  f"train.lr (now {tcfg.lr:g})") from None
            seconds = clock.wall["fit"]
            save_checkpoint(out_tmp / f"seed{seed}.pt", model,
                            {"model": name, "seed": seed, "dataset": mcfg.dataset})
            _curves_csv(plots_tmp / f"seed{seed}.csv", history)
            last = history[-1]
            model.eval()
            diagnostics = model.diagnostics(data.test_inputs(mcfg.binarize))
            per_seed[seed] = {"train": last["train"], "test": last["test"],
                              "diagnostics": diagnostics,
                              "time_s": seconds, "examples_per_s": last["examples_per_s"]}
            if figures_dir is not None and seed == cfg.seeds[0]:
                from vaebench.figures import model_figures
                model_figures(model, data.test_inputs(mcfg.binarize), figures_dir, name)
            per_seed[seed].update(started=started, finished=timestamp())
            print(f"{name} seed {seed}: test loss {last['test']['loss']:.3f} "
                  f"({seconds:.1f} s on {ctx.device_name})")
        n_params = sum(p.numel() for p in model.parameters())
        io.write_json(out_tmp / "config.json", {"model": mcfg.model_dump(),
                                                "train": tcfg.model_dump(), "epochs": epochs,
                                                "seeds": cfg.seeds, "profile": cfg.profile})
    metrics = {"model": name, "family": mcfg.family, "dataset": mcfg.dataset,
               "likelihood": mcfg.likelihood, "binarize": mcfg.binarize,  # units of the losses
               "profile": cfg.profile, "device": ctx.device_name,
               "threads": ctx.threads, "n_params": n_params,
               "epochs": epochs, **summarise(per_seed),
               "seeds": {str(s): r for s, r in per_seed.items()}}
    io.write_json(metrics_path, metrics)
    return metrics

