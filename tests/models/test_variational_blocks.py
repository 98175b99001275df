"""The variational-family blocks of params.yaml train through the real stage (tiny
profile) and their checkpoints restore everything they learned or fitted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from vaebench.checkpoints import load_checkpoint
from vaebench.train import train_stage

pytestmark = pytest.mark.slow   # every test reads the module fixture that trains 10 models
ROOT = Path(__file__).resolve().parents[2]

BLOCKS = {  # params.yaml model -> terms its metrics must report
    "mnist_iwae": {"vlb", "elbo", "recon", "kl"},
    "mnist_miwae": {"vlb", "elbo", "recon", "kl"},
    "mnist_ciwae": {"vlb", "elbo", "recon", "kl"},
    "mnist_piwae": {"vlb", "vlb_encoder", "elbo", "recon", "kl"},
    "mnist_vae_gaussprior": {"elbo", "kl"},
    "mnist_vae_mog": {"elbo", "kl"},
    "mnist_vae_vamp": {"elbo", "kl"},
    "mnist_vae_gaussdec": {"elbo", "recon"},
    "mnist_linear_vae": {"elbo", "log_px"},
    "mnist_ppca": {"elbo", "log_px"},
}


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """Every block trained once (one MLflow store for the module: creating one costs seconds)."""
    from vaebench.config import load_config
    tmp = tmp_path_factory.mktemp("blocks")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = "tiny"
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp / "params.yaml")
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        mp.chdir(tmp)                  # MLflow's default artifact root is ./mlruns
        mp.delenv("DVC_ROOT", raising=False)
        for name in BLOCKS:
            out = tmp / name
            metrics = train_stage(cfg, name, tiny_data / cfg.models[name].dataset, out / "model",
                                  out / "metrics.json", out / "plots")
            runs[name] = (cfg.models[name], metrics, out)
    return runs


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_trains_and_round_trips(name, trained, tiny_data):
    mcfg, metrics, out = trained[name]
    assert BLOCKS[name] <= set(metrics["test"]), metrics["test"].keys()
    assert all(map(lambda v: v == v, metrics["test"].values()))        # no NaN
    assert json.loads((out / "metrics.json").read_text())["family"] == mcfg.family
    model, _ = load_checkpoint(out / "model" / "seed0.pt")
    state = torch.load(out / "model" / "seed0.pt", weights_only=True)["state_dict"]
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    if "log_px" in BLOCKS[name]:  # the restored model reproduces the reported exact log p(x)
        from vaebench.data import load_prepared
        x = load_prepared(tiny_data / mcfg.dataset).test_inputs(mcfg.binarize)
        with torch.no_grad():
            log_px = float(model.exact_log_prob(x).mean())
        assert log_px == pytest.approx(metrics["test"]["log_px"], rel=1e-4)


def test_ppca_runs_no_epochs_and_reports_its_exact_likelihood(trained):
    _, metrics, out = trained["mnist_ppca"]
    rows = (out / "plots" / "seed0.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("0,0,")             # one row, epoch 0, step 0
    assert metrics["epochs"] == 0                                     # and says so
    assert metrics["test"]["loss"] == pytest.approx(-metrics["test"]["log_px"])
    # with the exact posterior as q the ELBO is log p(x) (up to the noise of its one-sample
    # estimate); an inexact posterior would cost tens of nats here
    assert metrics["test"]["elbo"] == pytest.approx(metrics["test"]["log_px"], rel=1e-2)


def test_linear_vae_elbo_is_below_its_exact_likelihood(trained):
    _, metrics, _ = trained["mnist_linear_vae"]
    for split in ("train", "test"):
        assert metrics[split]["elbo"] < metrics[split]["log_px"]
