"""``featurenet@<dataset>``: the feature space of the sample-quality stage.

No pretrained Inception network can be downloaded here, so each dataset gets its own
judge: a small conv classifier trained on the dataset's training split to read off its
labels -- MNIST: the digit; dSprites: all five factors (shape, scale, orientation, posX,
posY), one softmax head each, so the features must carry every factor the data varies.
The trunk is the stride-2 conv stack of the VQ models (:class:`GridEncoder`), as many
halvings as bring the side to 8 or less (28 -> 7, 64 -> 8), then one fully connected
ReLU layer: its output, the penultimate layer, is the feature vector the Fréchet
distance and precision/recall are computed on. Training uses the loop of the
attribute-vector judge (:func:`vaebench.evaluate.factor_classifier.fit_heads`).
Inputs are intensities in [0, 1] (not binarised), as decoder means are.

Writes ``<out>/featurenet.pt`` (weights, architecture, held-out accuracy) and a metrics
JSON with the accuracy per factor on the whole prepared test split.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vaebench import io
from vaebench.config import ConfigError, Params
from vaebench.data import load_prepared
from vaebench.evaluate.factor_classifier import fit_heads
from vaebench.models.nets import GridEncoder
from vaebench.stage import Clock, StageContext, seeded_torch

CHECKPOINT = "featurenet.pt"
_BATCH = 1000   # images per forward pass outside training


def halvings(side: int) -> int:
    """Stride-2 convolutions that bring ``side`` to 8 or less (each halves an even side)."""
    n = 0
    while side > 8 and side % 2 == 0:
        side, n = side // 2, n + 1
    return n


class FeatureNet(nn.Module):
    """Images (n, C, H, W) in [0, 1] -> features (n, feature_dim) -> one logit set per factor."""

    def __init__(self, image_shape, factor_sizes, channels: int = 32, feature_dim: int = 64):
        super().__init__()
        self.arch = {"image_shape": [int(s) for s in image_shape],
                     "factor_sizes": [int(s) for s in factor_sizes],
                     "channels": int(channels), "feature_dim": int(feature_dim)}
        c, h, w = image_shape
        conv = GridEncoder(c, [channels] * max(1, halvings(min(h, w))), channels)
        with torch.no_grad():
            n_flat = conv(torch.zeros(1, c, h, w)).numel()
        self.trunk = nn.Sequential(conv, nn.ReLU(), nn.Flatten(),
                                   nn.Linear(n_flat, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, sum(self.arch["factor_sizes"]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.head(self.features(x)).split(self.arch["factor_sizes"], dim=1))

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = _BATCH):
        """Features of every image, in batches, as float64 numpy (n, feature_dim)."""
        return torch.cat([self.features(xb).double().cpu() for xb in x.split(batch_size)]).numpy()

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = _BATCH) -> torch.Tensor:
        """Held-out accuracy per factor (F,)."""
        hits = sum(torch.stack([lg.argmax(1) for lg in self.logits(xb)], 1).eq(yb).sum(0)
                   for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
        return hits.double() / len(x)


def save_featurenet(net: FeatureNet, out_dir: Path, **record) -> None:
    """The folder ``out_dir`` (owned by the stage: replaced whole) with the checkpoint."""
    with io.atomic_dir(out_dir, (CHECKPOINT,)) as tmp:
        torch.save({"arch": net.arch, "state_dict": net.state_dict(), **record}, tmp / CHECKPOINT)


def load_featurenet(folder: Path, dataset: str, device="cpu") -> tuple[FeatureNet, dict]:
    """(feature net in eval mode, its record) from ``<folder>/featurenet.pt``."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no feature net for dataset {dataset!r}; run "
                                f"`dvc repro featurenet@{dataset}` first")
    record = torch.load(path, map_location=device, weights_only=True)
    if record.get("dataset") != dataset:
        raise ConfigError(f"{path}: a feature net of dataset {record.get('dataset')!r}, "
                          f"not {dataset!r}")
    net = FeatureNet(**record["arch"]).to(device)
    net.load_state_dict(record["state_dict"])
    return net.eval(), record


def featurenet_stage(cfg: Params, dataset: str, data_dir: Path, out_dir: Path,
                     metrics_path: Path) -> dict:
    """``featurenet@<dataset>``: train the judge; checkpoint folder, metrics JSON."""
    fcfg = cfg.section("samplequality").featurenet
    if dataset not in fcfg.datasets:
        raise ConfigError(f"samplequality.featurenet.datasets: {dataset!r} is not listed; "
                          f"listed: {fcfg.datasets}")
    io.check_replaceable(out_dir, (CHECKPOINT,))
    ctx = StageContext.create(cfg, "samplequality", dataset)
    device = ctx.device
    data = load_prepared(data_dir, device)
    clock = Clock()
    with seeded_torch(device, fcfg.seed):
        gen = torch.Generator(device=device).manual_seed(fcfg.seed)
        n = min(fcfg.n_train or len(data.x_train), len(data.x_train))
        rows = torch.randperm(len(data.x_train), generator=gen, device=device)[:n]
        net = FeatureNet(data.image_shape, data.meta["factor_sizes"], fcfg.channels,
                         fcfg.feature_dim).to(device)
        fit_heads(net, lambda idx: data.train_batch(rows[idx], binarize=False),
                  data.factors_train[rows], n, epochs=fcfg.epochs,
                  batch_size=fcfg.batch_size, lr=fcfg.lr, generator=gen)
    acc = net.accuracy(data.test_inputs(binarize=False), data.factors_test)
    names = list(data.meta["factor_names"])
    accuracy = {name: float(a) for name, a in zip(names, acc)}
    clock.lap("fit")
    metrics = {"dataset": dataset, "profile": cfg.profile, "device": ctx.device_name,
               "n_train": n, "n_test": len(data.x_test), "epochs": fcfg.epochs,
               "test_accuracy": accuracy, "test_accuracy_mean": float(acc.mean()),
               "n_params": sum(p.numel() for p in net.parameters()),
               "time_s": clock.wall["fit"]}
    save_featurenet(net.cpu(), Path(out_dir), dataset=dataset, factor_names=names,
                    test_accuracy=accuracy)
    io.write_json(metrics_path, metrics)
    print(f"featurenet@{dataset}: test accuracy {accuracy} ({n} training images, "
          f"{fcfg.epochs} epochs, {metrics['time_s']:.1f} s on {ctx.device_name})")
    return metrics
