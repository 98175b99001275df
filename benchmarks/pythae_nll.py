"""vaebench's log p(x) estimator against pythae's ``VAE.get_nll`` on the same model and data.

pythae (0.1.2) is a benchmark-only dependency, never one of the package: run this in a
separate environment that has it, with vaebench on the path, e.g.

    python -m venv /tmp/pythae && echo <main venv>/lib/python3.11/site-packages \
        > /tmp/pythae/lib/python3.11/site-packages/zz_main.pth
    /tmp/pythae/bin/pip install --no-deps pythae==0.1.2 && /tmp/pythae/bin/pip install imageio cloudpickle
    OMP_NUM_THREADS=1 PYTHONPATH=src /tmp/pythae/bin/python benchmarks/pythae_nll.py

One MNIST VAE (the ``--model`` block of params.yaml) is trained briefly with ``fit``
(or loaded from ``--checkpoint``); its encoder and decoder networks are wrapped into a
pythae VAE (Bernoulli decoder: sigmoid outputs, ``reconstruction_loss="bce"``), so both
estimators see the same weights and test images. Prints (importance samples x images)
per CPU second and the mean estimate of each, in one run.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from pythae.models import VAE as PythaeVAE
from pythae.models import VAEConfig as PythaeVAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder

from vaebench.checkpoints import load_checkpoint
from vaebench.config import load_config
from vaebench.data import load_prepared
from vaebench.evaluate.loglik.estimate import importance_estimates
from vaebench.models import build_model
from vaebench.train import fit


class Encoder(BaseEncoder):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return ModelOutput(embedding=mu, log_covariance=logvar)


class Decoder(BaseDecoder):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, z):
        return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))


def timed(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist_vae")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", type=Path, default=Path("data/prepared"))
    ap.add_argument("--checkpoint", type=Path, help="a trained checkpoint (default: train one)")
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n", type=int, default=100, help="test images")
    ap.add_argument("--k", type=int, default=1000, help="importance samples per image")
    ap.add_argument("--pythae-batch", type=int, nargs="+", default=[100, 1000])
    args = ap.parse_args()
    cfg = load_config(args.params)
    mcfg = cfg.models[args.model]
    data = load_prepared(args.data / mcfg.dataset)
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = build_model(mcfg, data.image_shape)
        fit(model, replace(data, x_train=data.x_train[:args.train_images]),
            cfg.model_train(args.model), epochs=args.epochs, seed=0, binarize=mcfg.binarize)
    model.eval()
    x = data.test_inputs(mcfg.binarize)[:args.n]
    pythae = PythaeVAE(PythaeVAEConfig(input_dim=tuple(data.image_shape),
                                       latent_dim=mcfg.latent_dim, reconstruction_loss="bce"),
                       encoder=Encoder(model.encoder), decoder=Decoder(model.decoder)).eval()
    rows = args.n * args.k
    lcfg = cfg.section("loglik")
    chunk = {"chunk_points": lcfg.chunk_points, "chunk_samples": lcfg.chunk_samples}
    runs = {}
    for naive in (False, True):
        est, s = timed(lambda: importance_estimates(model, x, [args.k], naive=naive,
                                                    progress=False, **chunk))
        runs[f"vaebench, proposal{' + naive (stage)' if naive else ''}"] = (
            float(est.log_p[args.k].mean()), s)
    with torch.no_grad():
        for b in args.pythae_batch:
            torch.manual_seed(0)
            value, s = timed(lambda: pythae.get_nll(x, n_samples=args.k, batch_size=b))
            runs[f"pythae get_nll, batch {b}"] = (float(value), s)
    best_pythae = max(rows / s for name, (_, s) in runs.items() if name.startswith("pythae"))
    print(f"{args.model}: {args.n} test images x K={args.k}, 1 thread, CPU time")
    print("| estimator | mean log p_K(x) (nats) | samples x images / CPU s | vs best pythae |")
    print("|---|---|---|---|")
    for name, (value, s) in runs.items():
        print(f"| {name} | {value:.3f} | {rows / s:.0f} | {rows / s / best_pythae:.2f} |")


if __name__ == "__main__":
    main()
