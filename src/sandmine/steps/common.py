"""Helpers shared by the stages that read the split and predict observations."""

from __future__ import annotations

import csv
from pathlib import Path


def read_split(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
