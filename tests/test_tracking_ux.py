"""MLflow as its users expect it: the experiment's kind, runs that span the work they
record, the standard source tags and the dataset input -- read back through MlflowClient
from a train stage's files (written here in that stage's format; nothing is trained)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from vaebench import io, mirror, tracking


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _mirror_train(files) -> None:
    mirror.train(files["metrics"], files["models"], files["plots"], data_dir=files["data"])


def _the_run():
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, exp, runs[0]


def test_a_mirrored_run_reads_back_as_mlflow_users_expect(train_files):
    _mirror_train(train_files)
    client, exp, run = _the_run()
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    # the run spans the seed's work as the stage recorded it, not the moment of logging
    started = _ms(train_files["started"])
    assert run.info.start_time == started
    assert run.info.end_time == started + int(train_files["work_s"] * 1000)
    assert run.info.end_time - run.info.start_time >= train_files["train_s"] * 1000
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"] == "train@m"
    commit = tracking.git_commit()       # this checkout is a git working tree
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and tags["mlflow.source.git.commit"] == commit
    [used] = run.inputs.dataset_inputs
    meta = io.read_json(train_files["data"] / "meta.json")
    assert used.dataset.name == "toy" and used.dataset.digest == mirror.dataset_digest(meta)
    assert json.loads(used.dataset.source)["uri"] == train_files["data"].resolve().as_uri()
    assert json.loads(used.dataset.profile) == {"n_train": 60, "n_test": 20,
                                                "image_shape": [1, 4, 4]}
    assert {(t.key, t.value) for t in used.tags} == {("mlflow.data.context", "training")}


def test_replaying_the_files_keeps_the_times_and_the_dataset_once(train_files, tmp_path,
                                                                  monkeypatch):
    _mirror_train(train_files)
    _, _, first = _the_run()
    # a later evaluation of the same checkpoint adds to the run without moving its times
    evaluated = train_files["started"] + timedelta(hours=2)
    seed = {"elbo": -90.0, "started": evaluated.isoformat(),
            "finished": (evaluated + timedelta(seconds=30)).isoformat()}
    io.write_json(tmp_path / "loglik.json", {"model": "m", "seeds": {"0": seed}})
    mirror.loglik(tmp_path / "loglik.json", train_files["models"])
    _mirror_train(train_files)                               # `mlflow-sync` on the same store
    _, _, again = _the_run()
    assert again.data.metrics["loglik/elbo"] == -90.0
    assert (again.info.start_time, again.info.end_time) == (first.info.start_time,
                                                            first.info.end_time)
    assert len(again.inputs.dataset_inputs) == 1
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'new.db'}")
    _mirror_train(train_files)                               # into a lost / new store
    _, _, rebuilt = _the_run()
    assert (rebuilt.info.start_time, rebuilt.info.end_time) == (first.info.start_time,
                                                                first.info.end_time)
    assert rebuilt.inputs.dataset_inputs[0].dataset.digest == \
        first.inputs.dataset_inputs[0].dataset.digest


def test_an_existing_experiment_gets_its_kind(tmp_path):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking.tracking_uri())
    exp_id = client.create_experiment(tracking.EXPERIMENT)     # as an older vaebench made it
    with tracking.model_run("m", 0, "key") as run:
        assert run is not None
    kind = client.get_experiment(exp_id).tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"


def test_outside_git_the_source_has_no_commit(monkeypatch):
    monkeypatch.setattr(tracking, "git_commit", lambda: "unknown")
    assert tracking.source_tags("train@m") == {"mlflow.source.type": "LOCAL",
                                               "mlflow.source.name": "train@m"}


@pytest.mark.parametrize("record", [{}, {"started": "yesterday", "finished": "today"},
                                    {"started": None, "finished": None}])
def test_files_without_recorded_times_give_no_span(record):
    assert mirror.span(record) is None
