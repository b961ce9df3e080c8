"""Stage aoi: an AOI mask and polygon per observation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sandmine import aoi as aoi_mod
from sandmine.core.config import Params
from sandmine.core.files import fresh_dir, write_text
from sandmine.core.raster import rasterize, read_image, write_cog
from sandmine.core.sites import read_manifest

log = logging.getLogger(__name__)


def run(p: Params, images_dir: Path, rivers_path: Path, out_dir: Path) -> None:
    manifest = read_manifest(images_dir / "manifest.csv")
    rivers = aoi_mod.read_rivers(rivers_path) if p.aoi.rivers == "vector" else []
    fresh_dir(out_dir)
    for rec in tqdm(manifest, desc="aoi", unit="obs"):
        image = read_image(images_dir / rec["file"], ["B3", "B11"] if p.aoi.rivers == "water_index" else None)
        grid = image.grid
        if p.aoi.rivers == "vector":
            mask = rasterize([aoi_mod.from_vector(rivers, grid, p.aoi)], grid)
        else:
            mask = aoi_mod.from_water_index(image, p.aoi)
        if not mask.any():
            log.warning("%s: no river found, AOI is empty", rec["obs_id"])
        write_cog(out_dir / f"{rec['obs_id']}.tif", mask.astype(np.uint8), grid, ["aoi"])
        write_text(
            out_dir / f"{rec['obs_id']}.geojson",
            json.dumps(aoi_mod.to_geojson(aoi_mod.polygon_of(mask, grid), grid, rec["obs_id"])) + "\n",
        )
