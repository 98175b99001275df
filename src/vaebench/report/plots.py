"""The report's figures, drawn from files only (metrics JSON and curve CSVs).

Every figure uses one colour per model (:func:`model_colours`, keyed by the
model's name in params.yaml order), labels its axes with units, and is saved
as PNG. The frames the curves are drawn from are written beside them as CSV by
the stage; those are what the top-level ``plots:`` of dvc.yaml render
(``dvc plots show``) through the template ``plot_by_model.json`` (one line per
model, one panel per ``panel`` value).
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from scipy import stats  # noqa: E402

from vaebench.report.tables import (  # noqa: E402
    DISENTANGLEMENT, ROBUSTNESS_METRICS, Flat, group_of,
)

DPI = 90


def model_colours(models: list[str]) -> dict[str, str]:
    """One colour per model, in params.yaml order: tab10 up to 10 models; beyond, the 20
    hues of tab20 (dark shades first, so neighbours differ) then tab20b's, up to 40;
    evenly spaced on turbo beyond."""
    n = len(models)
    if n <= 10:
        palette = plt.get_cmap("tab10").colors
    elif n <= 40:
        t20, t20b = plt.get_cmap("tab20").colors, plt.get_cmap("tab20b").colors
        palette = t20[0::2] + t20[1::2] + sum((t20b[i::4] for i in range(4)), ())
    else:
        cmap = plt.get_cmap("turbo")
        palette = [cmap(x) for x in np.linspace(0.05, 0.95, n)]
    return {m: to_hex(palette[i]) for i, m in enumerate(models)}


def ci95(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Half-width of the 95% Student-t interval of the mean (0 for a single value)."""
    values = np.asarray(values, float)
    n = values.shape[axis]
    if n < 2:
        return np.zeros(np.delete(values.shape, axis))
    return stats.t.ppf(0.975, n - 1) * values.std(axis=axis, ddof=1) / np.sqrt(n)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def _grid(n: int, ncols: int, w: float = 4.2, h: float = 3.2):
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def _legend(fig, axes, colours: dict[str, str]) -> None:
    """One legend for the figure, in the models' order."""
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    order = [m for m in colours if m in handles] + [m for m in handles if m not in colours]
    if order:
        # as many columns as fit the figure's width (an 8 pt character is ~0.07 in wide,
        # the line sample and padding ~0.5 in), so the legend is never clipped
        entry_in = 0.5 + 0.07 * max(map(len, order))
        fits = int(fig.get_figwidth() // entry_in)
        fig.legend([handles[m] for m in order], order, loc="outside lower center",
                   ncols=max(1, min(len(order), 5, fits)), fontsize=8, frameon=False)


# --- training curves ---------------------------------------------------------------------

def read_train_curves(plots_dir: Path, metrics: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """panel, model, seed, epoch, test_loss from ``plots/train/<model>/seed<k>.csv``; the
    panel is the model's (dataset, likelihood kind), :func:`tables.group_of` of its train
    metrics: a Gaussian density of intensities (~ -1000 nats as a loss) on a Bernoulli
    panel would flatten every Bernoulli curve."""
    frames = []
    for model, data in metrics.get("train", {}).items():
        for path in sorted((plots_dir / "train" / model).glob("seed*.csv")):
            df = pd.read_csv(path)
            if not {"epoch", "test_loss"} <= set(df.columns):
                continue
            df = df[["epoch", "test_loss"]].assign(model=model, panel=group_of(data),
                                                   seed=path.stem.removeprefix("seed"))
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["epoch", "test_loss", "model", "panel", "seed"])


def aggregate_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean test loss over seeds per (panel, model, epoch), with its 95% interval."""
    cols = ["panel", "model", "epoch", "test_loss", "test_loss_ci95"]
    if curves.empty:
        return pd.DataFrame(columns=cols)
    return (curves.groupby(["panel", "model", "epoch"], sort=False)["test_loss"]
            .agg(test_loss="mean", test_loss_ci95=lambda v: float(ci95(v.to_numpy())))
            .reset_index()[cols])


def training_curves(agg: pd.DataFrame, colours: dict[str, str], path: Path) -> Path | None:
    """Test objective per epoch, one panel per (dataset, likelihood kind); mean over seeds
    ± 95% interval."""
    if agg.empty:
        return None
    panels = list(dict.fromkeys(agg["panel"]))
    fig, axes = _grid(len(panels), 3)
    for ax, panel in zip(axes, panels):
        for model, df in agg[agg["panel"] == panel].groupby("model", sort=False):
            c = colours.get(model, "grey")
            ax.plot(df["epoch"], df["test_loss"], marker="o", ms=3, color=c, label=model)
            ax.fill_between(df["epoch"], df["test_loss"] - df["test_loss_ci95"],
                            df["test_loss"] + df["test_loss_ci95"], color=c, alpha=0.15, lw=0)
        ax.set(title=panel, xlabel="epoch",
               ylabel="test objective (own loss, nats per image)")
        ax.grid(alpha=0.3)
    _legend(fig, axes, colours)
    return _save(fig, path)


# --- log-likelihood against K --------------------------------------------------------------

def loglik_frame(metrics: dict[str, dict[str, dict]], F: Flat) -> pd.DataFrame:
    """panel (dataset · likelihood kind), model, k, log_p_hat (mean over seeds) with its SE
    and 95% interval, the naive estimate, the ELBO and the exact value where known."""
    rows = []
    for model, data in metrics.get("loglik", {}).items():
        f = F["loglik"][model]
        for k in data.get("ks") or []:
            c = f.get(f"log_p_hat.k{k}")
            if c is None:
                continue
            naive, elbo, exact = (f.get(f"naive.k{k}"), f.get("elbo"), f.get("exact"))
            gain = f.get(f"log_p_hat.k{k}.minus_elbo")
            rows.append({"panel": group_of(data), "model": model, "k": int(k),
                         "log_p_hat": c.value, "stderr": c.stderr, "ci95": c.ci95,
                         "gain": gain.value if gain else None,
                         "gain_stderr": gain.stderr if gain else None,
                         "gain_ci95": gain.ci95 if gain else None,
                         "naive": naive.value if naive else None,
                         "elbo": elbo.value if elbo else None,
                         "exact": exact.value if exact else None})
    return pd.DataFrame(rows, columns=["panel", "model", "k", "log_p_hat", "stderr", "ci95",
                                       "gain", "gain_stderr", "gain_ci95", "naive", "elbo",
                                       "exact"])


def _bar(df: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """Error bar half-widths: the 95% interval over seeds, else the SE over test points."""
    ci = pd.to_numeric(df[f"{prefix}ci95"], errors="coerce")
    se = pd.to_numeric(df[f"{prefix}stderr"], errors="coerce")
    return ci.fillna(se).fillna(0).to_numpy()


def _k_axis(ax, ks) -> None:
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("K, importance samples (log scale)")
    ax.grid(alpha=0.3)


def loglik_vs_k(frame: pd.DataFrame, colours: dict[str, str], path: Path) -> Path | None:
    """Against K (log axis), one row per panel, i.e. (dataset, likelihood kind): the
    importance-sampling estimate log p̂_K(x) (exact log p(x) dashed where known), its gain
    over the ELBO (a paired difference, so its error bars are much smaller), and the naive
    prior-sampling estimate."""
    if frame.empty:
        return None
    panels = list(dict.fromkeys(frame["panel"]))
    kinds = ["log_p_hat"] + [c for c in ("gain", "naive") if frame[c].notna().any()]
    fig, axes = plt.subplots(len(panels), len(kinds), squeeze=False,
                             figsize=(4.6 * len(kinds), 3.5 * len(panels) + 0.6),
                             layout="constrained")
    ks = sorted(frame["k"].unique())
    for row, panel in zip(axes, panels):
        rows = frame[frame["panel"] == panel]
        for model, df in rows.groupby("model", sort=False):
            c = colours.get(model, "grey")
            for ax, kind in zip(row, kinds):
                if kind == "naive":
                    ax.plot(df["k"], df["naive"], color=c, marker="s", ms=4, ls=":", label=model)
                else:
                    prefix = "gain_" if kind == "gain" else ""
                    ax.errorbar(df["k"], df[kind], yerr=_bar(df, prefix), color=c, marker="o",
                                ms=4, capsize=3, label=model)
            if df["exact"].notna().any():
                row[0].axhline(df["exact"].dropna().iloc[0], color=c, ls="--", lw=1)
        exact = " (dashed: exact log p(x))" if rows["exact"].notna().any() else ""
        titles = {"log_p_hat": (f"{panel}: log p̂_K(x){exact}", "log p̂_K(x) (nats per image)"),
                  "gain": (f"{panel}: gain over the ELBO",
                           "log p̂_K(x) − ELBO (nats per image)"),
                  "naive": (f"{panel}: naive (z from the prior)", "estimate (nats per image)")}
        for ax, kind in zip(row, kinds):
            ax.set_title(titles[kind][0], fontsize=10)
            ax.set_ylabel(titles[kind][1])
            _k_axis(ax, ks)
    _legend(fig, list(axes.flat), colours)
    return _save(fig, path)


# --- disentanglement -------------------------------------------------------------------------

def disentanglement_bars(F: Flat, colours: dict[str, str], path: Path) -> Path | None:
    """Grouped bars: the headline scores (0 to 1) per model, 95% interval over seeds."""
    by_model = F.get("disentangle", {})
    keys = [k for k in DISENTANGLEMENT if any(k in f for f in by_model.values())]
    if not keys:
        return None
    models = list(by_model)
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) + 0.3 * len(models)), 4.0),
                           layout="constrained")
    x = np.arange(len(keys))
    for i, model in enumerate(models):
        cells = [by_model[model].get(k) for k in keys]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, [c.value if c else np.nan for c in cells],
               width, yerr=[(c.ci95 or 0) if c else 0 for c in cells], capsize=2,
               color=colours.get(model, "grey"), label=model)
    ax.set_xticks(x, [DISENTANGLEMENT[k] for k in keys], rotation=20)
    ax.set(ylabel="score (0 to 1, higher is better)", ylim=(0, 1.05))
    ax.grid(alpha=0.3, axis="y")
    _legend(fig, [ax], colours)
    return _save(fig, path)


# --- robustness ----------------------------------------------------------------------------

GROUP_TITLES = {"gaussian": "Gaussian noise", "masking": "masking (pixels set to 0)",
                "salt_pepper": "salt-and-pepper noise", "attack_l2": "PGD attack, L2 ball",
                "attack_linf": "PGD attack, L∞ ball"}
LEVEL_LABELS = {"gaussian": "noise σ", "masking": "fraction of pixels masked",
                "salt_pepper": "fraction of pixels replaced by 0 or 1",
                "attack_l2": "ε (L2 ball)", "attack_linf": "ε (L∞ ball)"}
METRIC_LABELS = {"recon_err": "‖x̂(x̃) − x‖² (sum over pixels)",
                 "code_dist": "‖r(x̃) − r(x)‖ / ‖r(x)‖",
                 "kl": "KL(q(z|x̃) ‖ q(z|x)) (nats)",
                 "delta_elbo": "ELBO change on clean x (nats)",
                 "probe_acc": "probe accuracy (mean over factors)",
                 "latent": "KL (nats) or relative code distance",
                 "output": "‖x̂(x+δ) − x̂(x)‖² (sum over pixels)"}
def group_order(group: str) -> tuple:
    """Corruptions first, then attacks, each alphabetically."""
    return (group.startswith("attack"), group)


_CURVE = re.compile(r"(?P<group>.+)-(?P<metric>[^-]+)\.csv")


def read_robustness_curves(plots_dir: Path, datasets: dict[str, str]) -> pd.DataFrame:
    """panel, dataset, group, metric, model, level, value (mean over seeds), ci95 from
    ``plots/robustness/<model>/<group>-<metric>.csv`` for ``{model: dataset}`` (per-factor
    probes left out: they are in results.csv)."""
    frames = []
    for model, dataset in datasets.items():
        for path in sorted((plots_dir / "robustness" / model).glob("*.csv")):
            m = _CURVE.fullmatch(path.name)
            if not m or m["metric"].startswith("probe_acc_"):
                continue
            df = pd.read_csv(path)
            if not {"level", "value"} <= set(df.columns):
                continue
            seeds = [c for c in df.columns if re.fullmatch(r"seed\d+", c)]
            half = ci95(df[seeds].to_numpy(), axis=1) if len(seeds) > 1 else np.zeros(len(df))
            frames.append(pd.DataFrame({"panel": f"{dataset} · {m['group']}: {m['metric']}",
                                        "dataset": dataset, "group": m["group"],
                                        "metric": m["metric"], "model": model,
                                        "level": df["level"], "value": df["value"],
                                        "ci95": half}))
    cols = ["panel", "dataset", "group", "metric", "model", "level", "value", "ci95"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def robustness_curves(curves: pd.DataFrame, colours: dict[str, str], out_dir: Path
                      ) -> list[Path]:
    """One figure per corruption / attack (``robustness_<group>.png``): a row of panels
    (one per metric) per dataset, a line per model, band: 95% interval over seeds."""
    if curves.empty:
        return []
    paths = []
    for group in sorted(set(curves["group"]), key=group_order):
        g = curves[curves["group"] == group]
        found = set(g["metric"])
        metrics = [m for m in ROBUSTNESS_METRICS if m in found] + sorted(
            found - set(ROBUSTNESS_METRICS))
        datasets = list(dict.fromkeys(g["dataset"]))
        fig, axes = plt.subplots(len(datasets), len(metrics), squeeze=False,
                                 figsize=(3.4 * len(metrics), 2.9 * len(datasets) + 0.9),
                                 layout="constrained")
        for row, dataset in zip(axes, datasets):
            for ax, metric in zip(row, metrics):
                sub = g[(g["dataset"] == dataset) & (g["metric"] == metric)]
                for model, df in sub.groupby("model", sort=False):
                    c = colours.get(model, "grey")
                    ax.plot(df["level"], df["value"], marker="o", ms=3, color=c, label=model)
                    ax.fill_between(df["level"], df["value"] - df["ci95"],
                                    df["value"] + df["ci95"], color=c, alpha=0.15, lw=0)
                ax.set_title(f"{dataset}: {metric}", fontsize=10)
                ax.set_xlabel(LEVEL_LABELS.get(group, "level"), fontsize=9)
                ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=9)
                ax.grid(alpha=0.3)
                if sub.empty:
                    ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                            transform=ax.transAxes, color="grey")
        fig.suptitle(GROUP_TITLES.get(group, group.replace("_", " ")))
        _legend(fig, list(axes.flat), colours)
        paths.append(_save(fig, out_dir / f"robustness_{group}.png"))
    return paths
