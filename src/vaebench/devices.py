"""Device resolution: ``auto | cpu | cuda | cuda:N | mps``.

``auto`` takes a GPU when there is one. An explicit device that is absent is an
error naming the parameter, never a silent fallback.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


class DeviceError(RuntimeError):
    pass


def resolve_device(spec: str, key: str = "device") -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "no CUDA device is visible")
            raise DeviceError(f"{key}: {spec!r} was requested but {why} "
                              f"(torch {torch.__version__}); use 'cpu' or 'auto'")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"{key}: {spec!r} was requested but only "
                              f"{torch.cuda.device_count()} CUDA device(s) exist "
                              f"(valid: cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return torch.device(spec)
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"{key}: 'mps' was requested but Apple MPS is not available; "
                              f"use 'cpu' or 'auto'")
        return torch.device("mps")
    raise DeviceError(f"{key}: {spec!r} is not a device; valid: auto, cpu, cuda, cuda:N, mps")


def queue_workers(cwd: Path | None = None) -> int:
    """How many DVC experiments run now beside this one: DVC runs each queued
    experiment in its own ``mkdtemp`` folder under ``.dvc/tmp/exps/`` (removed when it
    ends), so inside one of them the ``tmp*`` folders beside it are the running
    workers. 1 outside a queued experiment."""
    parts = (cwd or Path.cwd()).resolve().parts
    for i in range(len(parts) - 3):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            for j in range(i + 3, len(parts)):
                if parts[j].startswith("tmp"):
                    parent = Path(*parts[:j])
                    return max(1, sum(1 for p in parent.iterdir()
                                      if p.is_dir() and p.name.startswith("tmp")))
    return 1


def resolve_threads(spec: int | str = "auto", cwd: Path | None = None) -> int:
    """torch's CPU threads for a stage (params ``threads``): N as given; ``auto`` is
    ``$OMP_NUM_THREADS`` when set, else the cores this process may run on divided by
    the DVC queue workers running now (two workers with two threads each on two cores
    run several times slower than with one each)."""
    if spec != "auto":
        return int(spec)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // queue_workers(cwd))


def use_threads(spec: int | str = "auto") -> int:
    """Set torch's intra-op threads from params ``threads``; return the number set."""
    n = resolve_threads(spec)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def describe(device: torch.device) -> str:
    """Human-readable device name recorded with results."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def seed_everything(seed: int, deterministic: bool = True,
                    device: torch.device | None = None) -> None:
    """Seed python, numpy and torch; make GPU kernels deterministic.

    On the CPU, torch's kernels are already deterministic for a fixed thread
    count (tests check bit-identical checkpoints), while
    ``torch.use_deterministic_algorithms`` swaps ConvTranspose2d for a fallback
    about ten times slower (``benchmarks/determinism.py``), so the switch is
    only thrown for accelerators.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    accelerated = device is not None and device.type != "cpu"
    want = deterministic and accelerated
    if torch.are_deterministic_algorithms_enabled() != want:   # the setter imports torch's
        torch.use_deterministic_algorithms(want)                # compiler stack (~2 s)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
