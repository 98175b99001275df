"""params ``threads``: torch's CPU threads per stage, divided among DVC's queue workers."""
from __future__ import annotations

import os

import pytest
import torch

from vaebench.devices import queue_workers, resolve_threads, use_threads


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_an_explicit_count_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads(1) == 1 and resolve_threads(4) == 4


def test_auto_takes_omp_num_threads_when_the_user_set_it(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads("auto") == 3


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_auto_divides_the_cores_among_the_queue_workers_running_now(tmp_path, monkeypatch,
                                                                    workers):
    """Inside a queued experiment (DVC's mkdtemp folders under .dvc/tmp/exps/celery/) every
    running sibling is a worker; celery's own folders there are not."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    exps = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "celery"
    for i in range(workers):
        (exps / f"tmp{i}abc" / "src").mkdir(parents=True)
    (exps / "broker").mkdir()
    here = exps / "tmp0abc" / "src"
    assert queue_workers(here) == workers
    assert resolve_threads("auto", here) == max(1, _cores() // workers)


def test_outside_a_queued_experiment_there_is_one_worker(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert queue_workers(tmp_path) == 1
    assert resolve_threads("auto", tmp_path) == _cores()


def test_use_threads_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert use_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", [0, -2, "many", 1.5])
def test_bad_threads_name_the_parameter(raw_params, write_params, value):
    from vaebench.config import ConfigError, load_config
    raw_params["threads"] = value
    with pytest.raises(ConfigError, match="threads"):
        load_config(write_params(raw_params))
