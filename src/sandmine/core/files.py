"""Atomic writes: a file appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


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


def round_metrics(metrics: dict, digits: int = 4) -> dict:
    """Numeric metrics (nested dicts allowed) rounded for stable diffs; NaN (undefined) as null."""
    out: dict = {}
    for k, v in sorted(metrics.items()):
        if isinstance(v, dict):
            out[k] = round_metrics(v, digits)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            out[k] = int(v)
        else:
            out[k] = None if math.isnan(float(v)) else round(float(v), digits)
    return out


def fresh_dir(path: str | Path) -> Path:
    """Empty an output folder owned by one stage (DVC removes it too before a run)."""
    path = Path(path)
    if path.exists():
        for child in sorted(path.rglob("*"), reverse=True):
            child.unlink() if child.is_file() or child.is_symlink() else child.rmdir()
    path.mkdir(parents=True, exist_ok=True)
    return path
