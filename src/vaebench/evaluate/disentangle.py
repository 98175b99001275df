"""``disentangle@<model>``: disentanglement metrics, latent traversals, attribute vectors.

For every seed's checkpoint of a model trained on a dataset with ground-truth
factors (dSprites), images are drawn for whatever factor combinations a metric
asks for -- straight from the factor grid (``Images``: rendered, or looked up in
the original file), whatever subsample the model was trained on -- encoded in
batches on the device, and every metric of
:data:`vaebench.evaluate.disentanglement.METRICS` runs with its parameters from
``params.yaml`` (``disentangle.metrics``; defaults: disentanglement_lib's study
protocol). Codes are the posterior mean (``representation: mean``,
``model.represent``) or one sample of q(z|x) (``sampled``).

Every random draw derives from ``disentangle.seed``: each metric gets its own
generator (seeded by the seed and the metric's name), so a metric's factor
samples do not depend on the others and are the same for every model compared.
The first seed's model also draws the latent traversals and the attribute
vectors' examples into the figures folder. Writes ``reports/metrics/
disentangle/<model>.json`` (per seed and mean over seeds; each metric with the
seconds it took); ``vaebench mlflow-sync`` mirrors it to the model's MLflow runs as
``disent/...``.
"""
from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from vaebench import io, runs
from vaebench.config import ConfigError, Params
from vaebench.data import get_dataset
from vaebench.evaluate import attribute_vectors as av
from vaebench.evaluate.disentanglement import METRICS
from vaebench.evaluate.factor_classifier import train_factor_classifier, within
from vaebench.evaluate.traversals import save_traversal_figure, traversal_images
from vaebench.stage import Clock, StageContext, checked_model, stream_rng

# representation name -> codes of a batch of images (B, C, H, W) -> (B, D)
REPRESENTATIONS = {
    "mean": lambda model, x: model.represent(x),
    "sampled": lambda model, x: model.encode(x).sample(),
}


# representations that are a function of the image (no sampling): their codes can be kept
DETERMINISTIC = {"mean"}
CACHE_MAX_IMAGES = 5_000_000      # factor grids up to this size keep one code per image


def make_codes_fn(model, images, representation: str, device, batch_size: int,
                  max_value: float = 1.0, factor_sizes: tuple[int, ...] | None = None):
    """codes_fn(factors (n, F) int) -> codes (n, D): draw the images, encode on ``device``.

    With ``factor_sizes`` and a deterministic representation, each grid image is drawn
    and encoded once per model and its code kept: at disentanglement_lib's sizes the
    metrics ask for ~3M images of dSprites' 737,280, most of them more than once."""
    encode = REPRESENTATIONS[representation]

    @torch.no_grad()
    def encode_factors(factors: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(factors), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images(factors[start:start + batch_size])))
            x = x.to(device).float().div_(max_value).reshape(-1, *model.image_shape)  # (B, C, H, W)
            parts.append(encode(model, x).cpu())
        if not parts:
            return np.zeros((0, model.cfg.latent_dim))
        return torch.cat(parts).double().numpy()

    grid = int(np.prod(factor_sizes)) if factor_sizes is not None else 0
    if representation not in DETERMINISTIC or not 0 < grid <= CACHE_MAX_IMAGES:
        return encode_factors
    known = np.zeros(grid, dtype=bool)
    codes = np.zeros((grid, model.cfg.latent_dim))

    def cached(factors: np.ndarray) -> np.ndarray:
        index = np.ravel_multi_index(np.asarray(factors).T, factor_sizes)     # (n,)
        new = np.unique(index[~known[index]])
        if new.size:
            codes[new] = encode_factors(np.stack(np.unravel_index(new, factor_sizes), axis=1))
            known[new] = True
        return codes[index]

    return cached


def make_decode_fn(model, device, batch_size: int):
    """decode_fn(codes (n, D)) -> images (n, H, W) in [0, 1]: the mean of p(x|z), channel 0."""
    @torch.no_grad()
    def decode_fn(codes: np.ndarray) -> np.ndarray:
        z = torch.as_tensor(codes, dtype=torch.float32, device=device)
        out = [model.decode(zb).mean[:, 0].clamp(0, 1).cpu() for zb in z.split(batch_size)]
        return torch.cat(out).numpy()
    return decode_fn


def make_classify_fn(classifier, device):
    """classify_fn(images (n, H, W) in [0, 1]) -> factor classes (n, F)."""
    def classify_fn(images: np.ndarray) -> np.ndarray:
        return classifier.predict(torch.as_tensor(images, dtype=torch.float32,
                                                  device=device)[:, None])
    return classify_fn


def run_metrics(codes_fn, factor_sizes, metrics_cfg, seed: int) -> dict:
    """Every metric of METRICS with its params; each result gets ``time_s`` and
    ``cpu_s`` (see :class:`vaebench.stage.Clock`) and the number of ConvergenceWarnings its
    classifiers raised (the protocol's default iteration limits)."""
    out, clock = {}, Clock()
    for name, compute in METRICS.items():
        params = getattr(metrics_cfg, name).model_dump()
        torch.manual_seed(stream_rng(seed, name).integers(2**31 - 1))  # representation: sampled
        with clock.part(name), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            result = compute(codes_fn, factor_sizes, stream_rng(seed, name), **params)
        out[name] = {**result, "time_s": clock.wall[name], "cpu_s": clock.cpu[name],
                     "convergence_warnings": sum(issubclass(w.category, ConvergenceWarning)
                                                 for w in caught)}
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in out[name].items()))
    return out


def train_judge(images, factor_names, factor_sizes, attrs_cfg, seed: int, device,
                max_value: float = 1.0):
    """The factor classifier that judges attribute vectors, and its held-out accuracy."""
    clock = Clock()
    with clock.part("classifier"):
        clf, predicted, truth = train_factor_classifier(
            images, factor_sizes, attrs_cfg.classifier, stream_rng(seed, "classifier"), device,
            max_value)
    report = {"accuracy": {n: float(within(predicted[:, j], truth[:, j]).mean())
                           for j, n in enumerate(factor_names)},
              # at each attribute's tolerance: the bar its hit rate is read against
              "accuracy_at_tolerance": {
                  a.name: float(within(predicted[:, factor_names.index(a.factor)],
                                       truth[:, factor_names.index(a.factor)],
                                       a.tolerance).mean()) for a in attrs_cfg.items},
              "n_train": attrs_cfg.classifier.n_train, "n_test": attrs_cfg.classifier.n_test,
              "time_s": clock.wall["classifier"], "cpu_s": clock.cpu["classifier"]}
    return clf, report


def run_attributes(codes_fn, decode_fn, classify_fn, images, factor_names, factor_sizes,
                   attrs_cfg, seed: int) -> tuple[dict, list[dict]]:
    """Every attribute vector of ``disentangle.attributes.items``: numbers and figure panels."""
    numbers, panels = {}, []
    for attr in attrs_cfg.items:
        k = factor_names.index(attr.factor)
        result, ex = av.evaluate_attribute(
            codes_fn, decode_fn, classify_fn, factor_sizes, k, attr.source, attr.target,
            n_vector=attrs_cfg.n_vector, n_apply=attrs_cfg.n_apply,
            rng=stream_rng(seed, f"attribute/{attr.name}"), tolerance=attr.tolerance)
        numbers[attr.name] = result
        m = min(attrs_cfg.n_examples, len(ex["factors"]))
        shown = ex["factors"][:m]
        truth = shown.copy()
        truth[:, k] = attr.target
        tiles = np.stack([images(shown).astype(float), ex["recon"][:m], ex["shifted"][:m],
                          images(truth).astype(float)], 1)               # (m, 4, H, W)
        panels.append({"name": attr.name, "tiles": tiles,
                       "caption": f"{attr.factor} {attr.source}->{attr.target}: "
                                  f"hit {result['hit_rate']:.2f} "
                                  f"(recon {result['baseline_hit_rate']:.2f})"})
    return numbers, panels


def draw_traversals(model, data, tcfg, path: Path, title: str) -> dict:
    """The traversal figure of one model around ``tcfg.n_images`` test images."""
    x_test = data.test_inputs(model.cfg.binarize)
    pick = np.linspace(0, len(x_test) - 1, min(tcfg.n_images, len(x_test))).astype(int)
    with torch.no_grad():
        reference = torch.cat([model.represent(xb) for xb in x_test[:1000].split(500)])
    grid, info = traversal_images(model, x_test[pick], tcfg.n_steps, tcfg.limit, reference)
    save_traversal_figure(path, x_test[pick, 0].cpu().numpy(), grid, tcfg.limit, title)
    return info


FIGURE_FILES = ("*.png",)   # what the stage writes into its figures folder


def disentangle_stage(cfg: Params, name: str, models_dir: Path, data_root: Path, raw_dir: Path,
                      out_json: Path, figures_dir: Path) -> dict:
    """``disentangle@<name>``: metrics, traversals and attribute vectors for every seed."""
    if name not in cfg.evaluate.disentangle:
        raise ConfigError(f"model {name!r} is not in evaluate.disentangle "
                          f"{cfg.evaluate.disentangle}; add it there (params.yaml)")
    mcfg = checked_model(cfg, "disentangle", name)
    section = cfg.section("disentangle")
    io.check_replaceable(figures_dir, FIGURE_FILES)
    ctx = StageContext.create(cfg, "disentangle", name, section)
    device = ctx.device
    trained = ctx.runs(models_dir)
    module = get_dataset(mcfg.dataset)
    images = module.Images(raw_dir)
    names, sizes = list(module.FACTOR_NAMES), tuple(module.FACTOR_SIZES)
    blas = nullcontext()
    if section.blas_threads is not None:
        from threadpoolctl import threadpool_limits
        blas = threadpool_limits(limits=section.blas_threads, user_api="blas")

    per_seed, judge = {}, None
    with blas, io.atomic_dir(figures_dir, FIGURE_FILES) as fig_tmp:
        if section.attributes.items:
            clf, judge = train_judge(images, names, sizes, section.attributes, section.seed,
                                     device)
            classify_fn = make_classify_fn(clf, device)
        for i, run in enumerate(trained):
            started = runs.timestamp()
            model, ckpt, data = ctx.load(run, data_root)
            print(f"{name} seed {run.seed} ({section.representation} codes, {ctx.device_name}):")
            codes_fn = make_codes_fn(model, images, section.representation, device,
                                     section.encode_batch_size, data.max_value, sizes)
            clock = Clock()
            with clock.part("metrics"):
                result = run_metrics(codes_fn, sizes, section.metrics, section.seed)
            if section.attributes.items:
                with clock.part("attributes"):
                    decode_fn = make_decode_fn(model, device, section.encode_batch_size)
                    result["attributes"], panels = run_attributes(
                        codes_fn, decode_fn, classify_fn, images, names, sizes,
                        section.attributes, section.seed)
                if i == 0:
                    av.save_attribute_figure(fig_tmp / "attribute_vectors.png", panels,
                                             f"{name} seed {run.seed}: attribute vectors")
            if i == 0:
                with clock.part("traversals"):
                    info = draw_traversals(model, data, section.traversals,
                                           fig_tmp / "traversals.png",
                                           f"{name} seed {run.seed}: latent traversals")
                result["traversals"] = {"reference": info["reference"]}
            result["time_s"], result["cpu_s"] = clock.wall, clock.cpu
            result.update(started=started, finished=runs.timestamp())
            per_seed[run.seed] = result
    metrics = runs.stage_metrics(name, ckpt, per_seed, profile=cfg.profile,
                                 device=ctx.device_name, representation=section.representation,
                                 image_source=images.source, classifier=judge)
    io.write_json(out_json, metrics)
    return metrics
