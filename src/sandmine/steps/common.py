"""Helpers shared by the stages that read the split and predict observations."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sandmine.errors import SandmineError
from sandmine.raster import read_image, read_mask


def read_split(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def scene(
    obs_id: str, bands: list[str], images: Path, labels: Path, aois: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = read_image(images / f"{obs_id}.tif", bands)
    label = read_mask(labels / f"{obs_id}.tif", image.grid)
    aoi = read_mask(aois / f"{obs_id}.tif", image.grid) > 0
    if np.isnan(image.data).all():
        raise SandmineError("image has no valid pixel", str(images / f"{obs_id}.tif"), "re-export it")
    return image.data, label, aoi
