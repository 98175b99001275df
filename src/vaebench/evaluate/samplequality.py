"""``samplequality@<model>``: how close a model's samples and reconstructions are to
held-out images, in the feature space of the dataset's own classifier
(:mod:`vaebench.evaluate.featurenet`; no pretrained Inception weights can be used
offline, so the numbers are named ``fd_<dataset>classifier``, never FID, and are not
comparable to published FIDs).

Three sets of ``n_samples`` images are each compared with the same ``n_reference``
held-out test images (the first rows of the prepared test split, which ``prepare``
stores in a seeded random order):

* ``samples``         -- ``model.sample(n)``: decoder means of codes from the prior (the
  ex-post mixture of an autoencoder, the code prior of a VQ model);
* ``reconstructions`` -- the means of p(x | z = represent(x)) of the next ``n_samples``
  test images (disjoint from the reference, so a perfect autoencoder is not paired
  with its own inputs);
* ``floor``           -- a seeded random subset of the training images: what two finite
  samples of the data distribution itself score (the same for every model of a dataset).

Each comparison gives the Fréchet distance (:mod:`.frechet_distance`) and precision /
recall with k-NN manifolds (:mod:`.precision_recall`, Kynkäänniemi et al. 2019,
arXiv:1904.06991). Every image is an intensity in [0, 1].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaebench import io
from vaebench.config import ConfigError, Params
from vaebench.evaluate.featurenet import FeatureNet, load_featurenet
from vaebench.evaluate.frechet_distance import frechet_distance
from vaebench.evaluate.precision_recall import precision_recall
from vaebench.models.capabilities import Generative, NotFitted
from vaebench.runs import stage_metrics, timestamp
from vaebench.stage import Clock, StageContext, checked_model, mixed_seed, seeded_torch


def fd_key(dataset: str) -> str:
    """The name of the Fréchet distance in ``dataset``'s classifier features."""
    return f"fd_{dataset}classifier"


def compare(features: np.ndarray, reference: np.ndarray, dataset: str, k: int) -> dict:
    """FD and precision/recall of one feature set against the reference features."""
    return {fd_key(dataset): frechet_distance(features, reference),
            **precision_recall(features, reference, k)}


@torch.no_grad()
def generate(model, name: str, n: int, batch_size: int, seed: int,
             device: torch.device) -> torch.Tensor:
    """``n`` samples of the model, in batches, from a seeded generator (restored after)."""
    if not isinstance(model, Generative):
        raise ConfigError(f"samplequality: model {name!r} ({type(model).__name__}) does not "
                          f"generate (no Generative capability); remove it from "
                          f"evaluate.samplequality")
    with seeded_torch(device, seed):
        parts = []
        for start in range(0, n, batch_size):
            try:
                parts.append(model.sample(min(batch_size, n - start)))
            except NotFitted as err:
                raise ConfigError(f"samplequality: model {name!r} returned no samples "
                                  f"({err}); re-run `dvc repro train@{name}`") from None
    return torch.cat(parts)


def reconstruct(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model.reconstruct(xb) for xb in x.split(batch_size)])


def sizes_fit(n_reference: int, n_samples: int, n_test: int, dataset: str) -> None:
    if n_reference + n_samples > n_test:
        raise ConfigError(
            f"samplequality: n_reference ({n_reference}) + n_samples ({n_samples}) exceed the "
            f"{n_test} test images of {dataset!r} (the reconstructed images are disjoint from "
            f"the reference); lower them under samplequality.datasets.{dataset}")


def evaluate_run(model, name: str, data, net: FeatureNet, scfg, seed: int,
                 reference: np.ndarray) -> dict:
    """One checkpoint's comparisons: {'samples': {...}, 'reconstructions': {...}, 'time_s'}."""
    clock = Clock()
    n, k, batch = scfg.n_samples, scfg.kth_neighbour, scfg.batch_size
    # the model reconstructs its test inputs as it saw them in training (binarised or not)
    held_out = data.test_inputs(model.cfg.binarize)[scfg.n_reference:scfg.n_reference + n]
    out = {"samples": compare(net.embed(generate(model, name, n, batch, seed, data.device)), reference,
                              data.name, k),
           "reconstructions": compare(net.embed(reconstruct(model, held_out, batch)),
                                      reference, data.name, k)}
    clock.lap("run")
    out["time_s"] = clock.wall["run"]
    return out


def floor(data, net: FeatureNet, scfg, reference: np.ndarray) -> dict:
    """Training images (a subset seeded by ``samplequality.seed``) against the reference."""
    gen = torch.Generator(device=data.device).manual_seed(scfg.seed)
    rows = torch.randperm(len(data.x_train), generator=gen, device=data.device)[:scfg.n_samples]
    return compare(net.embed(data.train_batch(rows, binarize=False)), reference, data.name,
                   scfg.kth_neighbour)


def samplequality_stage(cfg: Params, name: str, models_dir: Path, featurenets_dir: Path,
                        data_root: Path, out_json: Path) -> dict:
    """``samplequality@<name>``: every seed's checkpoint; metrics JSON."""
    dataset = checked_model(cfg, "samplequality", name).dataset
    scfg = cfg.section("samplequality").for_dataset(dataset)
    ctx = StageContext.create(cfg, "samplequality", name, scfg)
    net, record = load_featurenet(Path(featurenets_dir) / dataset, dataset, ctx.device)
    per_seed, base = {}, None
    for run in ctx.runs(models_dir):
        started = timestamp()
        model, ckpt, data = ctx.load(run, data_root)
        if base is None:
            sizes_fit(scfg.n_reference, scfg.n_samples, len(data.x_test), dataset)
            reference = net.embed(data.test_inputs(binarize=False)[:scfg.n_reference])
            base = floor(data, net, scfg, reference)
        seed = mixed_seed(scfg.seed, run.seed)
        per_seed[run.seed] = {**evaluate_run(model, name, data, net, scfg, seed, reference),
                              "started": started, "finished": timestamp()}
        r = per_seed[run.seed]
        print(f"{name} seed {run.seed}: {fd_key(dataset)} samples "
              f"{r['samples'][fd_key(dataset)]:.3g}, reconstructions "
              f"{r['reconstructions'][fd_key(dataset)]:.3g} (floor {base[fd_key(dataset)]:.3g}) "
              f"in {r['time_s']:.1f} s on {ctx.device_name}")
    out = stage_metrics(name, ckpt, per_seed, profile=cfg.profile, device=ctx.device_name,
                        n_reference=scfg.n_reference, n_samples=scfg.n_samples,
                        kth_neighbour=scfg.kth_neighbour,
                        feature_space=f"penultimate layer of featurenet@{dataset} "
                                      f"({net.arch['feature_dim']} features)",
                        featurenet={"test_accuracy": record["test_accuracy"]}, floor=base)
    io.write_json(out_json, out)
    return out
