"""What every stage function sets up before its own work, in one place.

:class:`StageContext` is built from (config, params section, model name) and gives
the stage its device, the trained checkpoints of the model loaded one seed at a time (with the
prepared data loaded once per dataset), and the torch threads to record. The clock
(:class:`Clock`), the guard :func:`checked_model` ("this model is in params.yaml and
the stage applies to it") and the seed derivations below are shared by the stages too.

Seeds: each stage keeps the derivation it has always used, so reruns reproduce the
same numbers: :func:`stream_seed` (an integer per named stream: robustness's test
subset, corruptions and attacks), :func:`stream_rng` (a numpy generator per named
purpose: disentangle's metrics), :func:`mixed_seed` (numpy's SeedSequence of
several integers: samplequality's sampling seed per trained seed), and
:func:`seeded_torch` for draws that go through torch's global RNG.
"""
from __future__ import annotations

import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from vaebench.config import ConfigError, Params, check_applicable
from vaebench.devices import describe, resolve_device
from vaebench.runs import TrainedRun, load_run, trained_runs


# --- seeds ------------------------------------------------------------------------------

def stream_seed(seed: int, *names) -> int:
    """A stable integer seed for one named stream of draws (independent of Python's hash
    seed and of the model: every model of a dataset gets the same draws)."""
    return (seed * 1_000_003 + zlib.crc32("/".join(map(str, names)).encode())) % 2**63


def stream_rng(seed: int, name: str) -> np.random.Generator:
    """An independent numpy generator per (stage seed, purpose), e.g. one per metric."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def mixed_seed(*entropy: int) -> int:
    """One 32-bit seed mixed from several integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


@contextmanager
def seeded_torch(device: torch.device, seed: int) -> Iterator[None]:
    """torch's global RNG (the CPU's and ``device``'s) seeded inside, restored afterwards,
    so a stage's draws do not depend on what ran before it, nor change what runs after."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


# --- cost ----------------------------------------------------------------------------

def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class Clock:
    """Wall and CPU (this process, all threads) seconds per named part; on a shared,
    busy machine CPU time is the steadier measure of cost.

    ``lap(name)`` closes a part that began at the previous lap (or at the start);
    ``with clock.part(name):`` times just the block; ``total()`` records start to last part.
    """

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._start = self._last = _now()

    def lap(self, name: str) -> None:
        now = _now()
        self.wall[name], self.cpu[name] = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        self._last = _now()
        yield
        self.lap(name)

    def total(self) -> None:
        self.wall["total"] = self._last[0] - self._start[0]
        self.cpu["total"] = self._last[1] - self._start[1]


# --- the context -----------------------------------------------------------------------

def checked_model(cfg: Params, section: str, name: str) -> Any:
    """``models.<name>`` of params.yaml, after checking that it is there and that the
    stage of ``section`` applies to its family (also when a stage is called directly)."""
    if name not in cfg.models:
        raise ConfigError(f"model {name!r} is not in params.yaml models; "
                          f"known: {sorted(cfg.models)}")
    check_applicable(section, name, cfg.models[name])
    return cfg.models[name]


@dataclass
class StageContext:
    """One stage run for one model (or dataset): where it computes, and its trained runs."""

    section: str                        # the params section, e.g. "loglik"
    name: str                           # the model (a dataset for featurenet@<dataset>)
    device: torch.device
    cfg: Params = field(repr=False)
    _data: dict = field(default_factory=dict, repr=False)   # dataset -> PreparedData

    @classmethod
    def create(cls, cfg: Params, section: str, name: str, settings: Any = None
               ) -> "StageContext":
        """The device is ``settings.device`` (the section as the stage reads it, with the
        model's or dataset's overrides), else ``<section>.device``, else the top-level
        ``device``."""
        spec = getattr(settings, "device", None) or cfg.stage_device(section)
        return cls(section, name, resolve_device(spec, f"{section}.device"), cfg)

    @property
    def device_name(self) -> str:
        """The device as the results record it."""
        return describe(self.device)

    @property
    def threads(self) -> int:
        """torch's CPU threads (set once per command from params ``threads``)."""
        return torch.get_num_threads()

    def runs(self, models_dir: str | Path) -> list[TrainedRun]:
        """The model's checkpoints for params.yaml's seeds, each checked against its config."""
        return trained_runs(self.cfg, self.name, models_dir)

    def load(self, run: TrainedRun, data_root: str | Path):
        """(model in eval mode, checkpoint dict, its prepared data) on the stage's device;
        the data of a dataset is loaded once for all seeds."""
        return load_run(run, data_root, self.device, self._data)
