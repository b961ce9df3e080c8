"""Reading a predicted observation as it is scored (evaluate, and calibration in train)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows

from sandmine.core.errors import SandmineError
from sandmine.core.metrics import Histogram
from sandmine.core.raster import Grid, read_grid, read_mask
from sandmine.core.schema import IGNORE

STRIP_PX = 1 << 20  # pixels per strip when scores are only counted


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
    return Scored(grid, q, label, aoi, label != IGNORE)


def add_scored(hist: Histogram, obs_id: str, pred_dir: Path, images: Path, label_dir: Path, aois: Path) -> None:
    """Count the AOI pixels of `obs_id` (ignore pixels excluded) into `hist`, a strip of rows at a time,
    so memory holds one strip whatever the observation's size (the same counts as `read_scored`)."""
    grid = read_grid(images / f"{obs_id}.tif")
    paths = [pred_dir / f"{obs_id}.tif", label_dir / f"{obs_id}.tif", aois / f"{obs_id}.tif"]
    with ExitStack() as stack:
        srcs = []
        for path in paths:
            read_grid(path)  # a missing or unreadable file says so
            src = stack.enter_context(rasterio.open(path))
            if (src.height, src.width) != (grid.height, grid.width) or src.transform != grid.transform:
                raise SandmineError("mask is not on the image grid", str(path), "re-run the stage that wrote it")
            srcs.append(src)
        rows = max(1, STRIP_PX // grid.width)
        for r in range(0, grid.height, rows):
            win = rasterio.windows.Window(0, r, grid.width, min(rows, grid.height - r))
            q, label, aoi = (src.read(1, window=win) for src in srcs)
            hist.add(q, label == 1, (aoi > 0) & (label != IGNORE))
