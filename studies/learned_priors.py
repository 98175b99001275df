"""Study: why do learned priors lose to N(0, I) on the quick profile?

Trains the four priors of the VAE family (standard, learned diagonal Gaussian,
mixture of Gaussians, VampPrior) on the quick profile's MNIST, with and without
a KL warm-up, over several seeds, and estimates log p(x) with the loglik
stage's own estimator. Prints one row per (prior, warm-up, epochs, seed) and
the means with 95% intervals over seeds.

    python studies/learned_priors.py --warmup 0 10 --seeds 0 1 2 --epochs 20

Cited protocol: Tomczak & Welling 2018, "VAE with a VampPrior" (arXiv:1705.07120)
train every prior with a KL warm-up (Sonderby et al. 2016, arXiv:1602.02282).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from vaebench.config import load_config
from vaebench.data import load_prepared
from vaebench.devices import seed_everything
from vaebench.models import build_model
from vaebench.evaluate.loglik.estimate import importance_estimates
from vaebench.train import fit

PRIORS = {"standard": "mnist_vae", "gaussian": "mnist_vae_gaussprior",
          "mog": "mnist_vae_mog", "vamp": "mnist_vae_vamp"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", nargs="+", default=list(PRIORS))
    ap.add_argument("--warmup", nargs="+", type=float, default=[0.0, 10.0])
    ap.add_argument("--epochs", nargs="+", type=int, default=[20])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--data", default="data/prepared/mnist")
    ap.add_argument("--out", default=None, help="JSON lines of every row")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = load_config("params.yaml", "quick")
    data = load_prepared(args.data, "cpu")
    rows = []
    for prior in args.priors:
        name = PRIORS[prior]
        for epochs in args.epochs:
            for warm in args.warmup:
                tcfg = cfg.model_train(name).model_copy(update={"kl_warmup_epochs": warm})
                for seed in args.seeds:
                    seed_everything(seed, True, torch.device("cpu"))
                    model = build_model(cfg.models[name], data.image_shape)
                    t0 = time.perf_counter()
                    hist = fit(model, data, tcfg, epochs=epochs, seed=seed, binarize=True)
                    secs = time.perf_counter() - t0
                    model.eval()
                    x = data.test_inputs(True)[:args.n_test]
                    est = importance_estimates(model, x, [args.k], chunk_points=50,
                                               chunk_samples=50, naive=False, progress=False)
                    row = {"prior": prior, "epochs": epochs, "warmup": warm, "seed": seed,
                           "test_elbo": hist[-1]["test"]["elbo"],
                           "train_elbo": hist[-1]["train"]["elbo"],
                           "kl": hist[-1]["test"]["kl"],
                           "log_p_hat": float(est.log_p[args.k].mean()),
                           "train_s": secs}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(f"\n{'prior':9} {'epochs':>6} {'warmup':>6}  log p_K (mean ± 95% CI over seeds)   ELBO")
    keys = sorted({(r["prior"], r["epochs"], r["warmup"]) for r in rows},
                  key=lambda t: (args.priors.index(t[0]), t[1], t[2]))
    for key in keys:
        sel = [r for r in rows if (r["prior"], r["epochs"], r["warmup"]) == key]
        lp = np.array([r["log_p_hat"] for r in sel])
        el = np.array([r["test_elbo"] for r in sel])
        half = 1.96 * lp.std(ddof=1) / np.sqrt(len(lp)) if len(lp) > 1 else float("nan")
        print(f"{key[0]:9} {key[1]:6d} {key[2]:6g}  {lp.mean():9.2f} ± {half:5.2f} (n={len(lp)})"
              f"      {el.mean():8.2f}")


if __name__ == "__main__":
    main()
