"""Atomic writes: a file appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    An interrupted stage leaves at most a `.tmp-*` file that no DVC output names.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are for sharing
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically with sorted keys, so reruns are byte-identical."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def round_metrics(metrics: dict[str, float], digits: int = 4) -> dict[str, float]:
    """Flat numeric metrics rounded for stable diffs."""
    return {k: round(float(v), digits) for k, v in sorted(metrics.items())}


def fresh_dir(path: str | Path) -> Path:
    """Empty an output folder owned by one stage (DVC removes it too before a run)."""
    path = Path(path)
    if path.exists():
        for child in sorted(path.rglob("*"), reverse=True):
            child.unlink() if child.is_file() or child.is_symlink() else child.rmdir()
    path.mkdir(parents=True, exist_ok=True)
    return path
