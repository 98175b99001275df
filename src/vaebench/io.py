"""Atomic file output: every result is written to a temporary file and renamed.

An interrupted stage therefore never leaves a file that looks complete. A stage
replaces only what it owns: a folder it writes as a whole is replaced only when it
is absent, empty, or holds nothing but the files that stage writes there.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class OutputError(Exception):
    """An output path that the stage would have to overwrite but does not own."""


def check_replaceable(path: str | os.PathLike, own: tuple[str, ...]) -> None:
    """Refuse (before any work) a folder that holds anything but files matching ``own``
    (the glob patterns of what the stage writes there): replacing it would delete
    files this stage did not write. An absent or empty folder is fine."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; choose another output path "
                          f"or remove it")
    foreign = sorted(p.name for p in path.iterdir()
                     if not (p.is_file() and any(fnmatch.fnmatchcase(p.name, g) for g in own)))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(f"{path}: output folder holds files this stage did not write "
                          f"({shown}); it would be replaced as a whole, so choose an empty or "
                          f"new folder (this stage writes only {', '.join(own)})")


@contextmanager
def atomic_dir(path: str | os.PathLike, own: tuple[str, ...]) -> Iterator[Path]:
    """Yield a temporary directory; it replaces ``path`` (whole) on success.

    ``own``: glob patterns of the files the caller writes; ``path`` is refused at entry
    (:class:`OutputError`) if it holds anything else (see :func:`check_replaceable`)."""
    path = Path(path)
    check_replaceable(path, own)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())   # mkdtemp makes 0700
    try:
        yield tmp
        if path.exists():
            check_replaceable(path, own)   # again: something may have appeared meanwhile
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _umask() -> int:
    """The process umask: read from /proc on Linux; elsewhere by setting and restoring
    it (which would briefly loosen the mode of a file another thread creates meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
