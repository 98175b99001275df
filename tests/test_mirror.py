"""`vaebench mlflow-sync`: the stages' files replayed into a lost store give the same runs."""
from __future__ import annotations

import json

import pytest

from vaebench import mirror, tracking
from vaebench.cli import main


def _artifacts(client, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for a in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, a.path) if a.is_dir else [a.path]
    return out


def snapshot() -> dict:
    """Every run of the store by its key: params, tags, full metric histories, artifacts."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = {}
    for r in client.search_runs([exp.experiment_id]):
        key = r.data.tags[tracking.RUN_KEY_TAG]
        assert key not in runs, f"two runs for {key}"
        runs[key] = {"params": r.data.params,
                     "tags": {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")},
                     "metrics": {k: sorted((m.step, m.value)
                                           for m in client.get_metric_history(r.info.run_id, k))
                                 for k in r.data.metrics},
                     "artifacts": sorted(_artifacts(client, r.info.run_id))}
    return runs


def assert_same(runs: dict, expected: dict) -> None:
    assert runs.keys() == expected.keys()
    for key, run in runs.items():
        for part, value in run.items():
            if isinstance(value, dict):
                diff = {k for k in value.keys() | expected[key][part].keys()
                        if value.get(k) != expected[key][part].get(k)}
                assert not diff, (key, part, {k: (value.get(k), expected[key][part].get(k))
                                              for k in sorted(diff)[:5]})
            assert value == expected[key][part], (key, part)


@pytest.fixture
def pipeline_files(tiny_config, tiny_data, tmp_path):
    """The tiny pipeline's files in dvc.yaml's layout (train + loglik + report of
    mnist_ppca run for real; robustness, disentangle and samplequality files of
    dsprites_vae written in those stages' format), each stage's files mirrored (by the
    functions the ``mlflow`` stage calls) after it ran."""
    from vaebench.evaluate.loglik import loglik_stage
    from vaebench.report.stage import report_stage
    from vaebench.train import train_stage
    r = tmp_path / "proj"
    metrics, plots, figures, models = (r / "reports/metrics", r / "reports/plots",
                                       r / "reports/figures", r / "models")
    name = "mnist_ppca"
    train_stage(tiny_config, name, tiny_data / "mnist", models / name,
                metrics / "train" / f"{name}.json", plots / "train" / name,
                figures / "train" / name)
    loglik_stage(tiny_config, name, models / name, tiny_data, metrics / "loglik" / f"{name}.json",
                 plots / "loglik" / f"{name}.csv", progress=False)
    report_stage(tiny_config, metrics, plots, figures, figures / "report", r / "reports")
    (r / "data").mkdir()
    (r / "data" / "prepared").symlink_to(tiny_data)      # the prepared data's meta.json
    mirror.train(metrics / "train" / f"{name}.json", models / name, plots / "train" / name,
                 figures / "train" / name, r / "data" / "prepared" / "mnist")
    mirror.loglik(metrics / "loglik" / f"{name}.json", models / name)
    mirror.report(r / "reports", figures / "report", mirror.report_params(tiny_config))
    # dsprites_vae (in evaluate.robustness and .disentangle): files in those stages' format
    other = "dsprites_vae"
    (models / other).mkdir()
    (models / other / "seed0.pt").write_bytes(b"a checkpoint")   # mirroring only hashes it
    seed = {"0": {"auc": {"gaussian": 0.5}, "time_s": {"total": 1.0}}}
    (metrics / "robustness").mkdir()
    (metrics / "robustness" / f"{other}.json").write_text(json.dumps({"model": other,
                                                                      "seeds": seed}))
    (plots / "robustness" / other).mkdir(parents=True)
    (plots / "robustness" / other / "corruption_gaussian-elbo.csv").write_text("level,value\n")
    (metrics / "disentangle").mkdir()
    (metrics / "disentangle" / f"{other}.json").write_text(json.dumps(
        {"model": other, "seeds": seed, "classifier": {"accuracy": 0.9}}))
    (figures / "disentangle" / other).mkdir(parents=True)
    (figures / "disentangle" / other / "traversals.png").write_bytes(b"png")
    mirror.robustness(metrics / "robustness" / f"{other}.json", models / other,
                      plots / "robustness" / other)
    mirror.disentangle(metrics / "disentangle" / f"{other}.json", models / other,
                       figures / "disentangle" / other)
    (metrics / "samplequality").mkdir()
    (metrics / "samplequality" / f"{other}.json").write_text(json.dumps(
        {"model": other, "seeds": seed, "floor": {"fd_dspritesclassifier": 2.0}}))
    mirror.samplequality(metrics / "samplequality" / f"{other}.json", models / other)
    return r


@pytest.mark.slow
def test_sync_rebuilds_a_lost_store_exactly_and_is_idempotent(pipeline_files, tmp_path,
                                                              monkeypatch, capsys):
    original = snapshot()
    assert len(original) == 3            # the two models' seed-0 runs and the report's suite run
    ppca = next(v for k, v in original.items() if k.startswith("mnist_ppca/"))
    assert {"final/test/loss", "loglik/elbo/mean", "curve/test/loss"} <= set(ppca["metrics"])
    assert "checkpoint/seed0.pt" in ppca["artifacts"] and ppca["params"]["data.n_train"]
    other = next(v for k, v in original.items() if k.startswith("dsprites_vae/"))
    assert {"robust/auc/gaussian", "disent/classifier/accuracy",
            "sampleq/floor/fd_dspritesclassifier"} <= set(other["metrics"])
    assert "figures/disentangle/traversals.png" in other["artifacts"]
    r = pipeline_files      # (the tags name the git commit of the checkout that mirrors)
    argv = ["--params", str(tmp_path / "params.yaml"), "mlflow-sync",
            "--metrics", str(r / "reports/metrics"), "--models", str(r / "models"),
            "--plots", str(r / "reports/plots"), "--figures", str(r / "reports/figures"),
            "--data", str(r / "data/prepared"), "--report", str(r / "reports")]
    assert main(argv) == 0
    assert_same(snapshot(), original)                    # same store: nothing added
    (tmp_path / "new").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")
    for _ in range(2):                                   # a new, empty store; then once more
        assert main(argv) == 0
        assert_same(snapshot(), original)
    out = capsys.readouterr().out
    assert "runs 3 -> 3" in out and "runs 0 -> 3" in out
    assert "train@dsprites_vae" in out                  # its training files are missing


def test_sync_to_an_unreachable_server_is_a_clear_error(tiny_config, tmp_path, monkeypatch,
                                                        capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setattr(tracking, "_unreachable", set())
    assert main(["--params", str(tmp_path / "params.yaml"), "mlflow-sync"]) == 2
    err = capsys.readouterr().err
    assert "mlflow-sync: error" in err and "http://127.0.0.1:9 does not answer" in err
