"""Reading a predicted observation as it is scored (evaluate, and calibration in train)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sandmine import labels
from sandmine.raster import Grid, read_grid, read_mask


@dataclass
class Scored:
    """One predicted observation as scored: stored probabilities and the pixels that count."""

    grid: Grid
    q: np.ndarray  # (H, W) uint8 probability levels (probability = q / 255)
    label: np.ndarray  # (H, W) uint8 0 / 1 / 255 ignore
    aoi: np.ndarray  # (H, W) bool
    known: np.ndarray  # (H, W) bool: not ignore


def read_scored(obs_id: str, pred_dir: Path, images: Path, label_dir: Path, aois: Path) -> Scored:
    """The prediction, label and AOI of `obs_id` on the image's grid."""
    grid = read_grid(images / f"{obs_id}.tif")
    q = read_mask(pred_dir / f"{obs_id}.tif", grid)
    label = read_mask(label_dir / f"{obs_id}.tif", grid)
    aoi = read_mask(aois / f"{obs_id}.tif", grid) > 0
    return Scored(grid, q, label, aoi, label != labels.IGNORE)
