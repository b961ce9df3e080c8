"""The embedded world's export: images, a Labelbox-shaped label export, rivers and exact truth.

It writes exactly what the real sources deliver (COGs with named bands and tags, a Labelbox
NDJSON export, a rivers vector file), so everything downstream runs the same code on it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
from shapely.geometry import box, mapping
from tqdm import tqdm

from sandmine.core.bands import CATALOGUE, check_names
from sandmine.core.config import WorldParams
from sandmine.core.files import write_text
from sandmine.core.raster import Grid, grid_for_bounds, pixels_to_map, to_crs, write_cog
from sandmine.core.sites import Observation, Site
from sandmine.sources.stored import NODATA, SCALES
from sandmine.sources.synthetic.annotator import annotate
from sandmine.sources.synthetic.layout import stable_seed
from sandmine.sources.synthetic.materials import load_signatures
from sandmine.sources.synthetic.render import render
from sandmine.sources.synthetic.scene import Terrain

log = logging.getLogger(__name__)
RECIPE = "sandmine-synthetic-v1"


def export(
    sites: dict[str, Site],
    observations: list[Observation],
    bands: list[str],
    world: WorldParams,
    images_dir: Path,
    source_dir: Path,
    previews_dir: Path | None = None,
) -> None:
    """Render every observation and write the files of the source boundary.

    Writes `images_dir/{obs_id}.tif` + `manifest.csv`, and in `source_dir`:
    `labels.ndjson` (Labelbox export rows of labelled observations), `rivers.geojson`
    (active channels, EPSG:4326) and `truth/{obs_id}.tif` (exact mining mask, for studies of
    label noise only). With `previews_dir`, true- and false-colour pictures of the first
    `world.previews` labelled observations. Memory holds one site at a time.
    """
    check_names(bands, "params.yaml: bands")
    sig = load_signatures()
    grids = {sid: grid_for_bounds(s.geometry.bounds) for sid, s in sites.items()}
    channels = {}
    manifest, rows = [], []
    site: Terrain | None = None
    previews = 0
    for obs in tqdm(sorted(observations, key=lambda o: o.obs_id), desc="export (synthetic)", unit="obs"):
        grid = grids[obs.site_id]
        if site is None or site.site_id != obs.site_id:
            site = Terrain(obs.site_id, grid.height, grid.width, world.seed, world.mine_density)
            channels[obs.site_id] = site.channel
        layout = site.on(obs.date)
        rng = np.random.default_rng(stable_seed(world.seed, obs.obs_id, "render"))
        pixels, names = render(layout, sig, rng, world.cloud_probability, world.haze_probability)
        keep = [names.index(b) for b in bands if b in names]
        missing = [b for b in bands if b not in names]
        if missing:
            raise ValueError(f"the synthetic world cannot render bands {missing}")
        tags = {"date": obs.date.isoformat(), "site_id": obs.site_id, "obs_id": obs.obs_id}
        write_image(images_dir / f"{obs.obs_id}.tif", pixels[keep], [names[i] for i in keep], grid, tags)
        write_cog(
            source_dir / "truth" / f"{obs.obs_id}.tif",
            layout.truth.astype(np.uint8),
            grid,
            ["truth"],
            {"source": "synthetic"},
        )
        if obs.role == "labelled":
            rows.append(annotate(layout, obs.obs_id, obs.date, grid.crs, grid.transform, rng, world.annotator_miss_ha))
            if previews_dir is not None and previews < world.previews:
                _preview(pixels, names, layout.truth, rows[-1], grid, previews_dir / f"{obs.obs_id}.png")
                previews += 1
        manifest.append(
            [
                obs.obs_id,
                obs.site_id,
                obs.date.isoformat(),
                obs.role,
                f"{obs.obs_id}.tif",
                grid.crs.to_string(),
                grid.height,
                grid.width,
                "synthetic",
            ]
        )
    write_text(source_dir / "labels.ndjson", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    write_text(source_dir / "rivers.geojson", json.dumps(_rivers(channels, grids), indent=1) + "\n")
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["obs_id", "site_id", "date", "role", "file", "crs", "height", "width", "source"])
    out.writerows(manifest)
    write_text(images_dir / "manifest.csv", buf.getvalue())


def write_image(path: Path, pixels: np.ndarray, names: list[str], grid: Grid, tags: dict[str, str]) -> None:
    """Scaled int16 like an Earth Engine export: value = stored × scale; NaN is written as NODATA.

    `tags` (date, ids) go between `source: synthetic` and the recipe (RECIPE unless `tags` names
    one) and the SYNTHETIC note.
    """
    scales = [SCALES[CATALOGUE[n].unit] for n in names]
    stored = np.stack([np.round(p / s) for p, s in zip(pixels, scales)])
    stored = np.where(np.isfinite(stored), stored, NODATA).clip(-32767, 32767).astype(np.int16)
    tags = {"source": "synthetic", **tags}
    tags.setdefault("recipe", RECIPE)
    tags["note"] = "SYNTHETIC: rendered by sandmine's embedded world, not real imagery"
    write_cog(path, stored, grid, names, tags, nodata=NODATA, scales=scales, resampling="average")


def _preview(pixels: np.ndarray, names: list[str], truth: np.ndarray, row: dict, grid: Grid, path: Path) -> None:
    """True colour and SWIR-NIR-red false colour with the annotator's polygons and the truth."""
    from sandmine.core.config import LabelsParams
    from sandmine.core.pictures import world_preview
    from sandmine.core.schema import MINE, rasterize_row
    from sandmine.sources.labelbox import parse_row

    drawn, _ = rasterize_row(parse_row(row), grid, np.ones(truth.shape, bool), LabelsParams())
    world_preview(pixels, names, drawn == MINE, truth, row["data_row"]["global_key"], path)


def _rivers(channels: dict, grids: dict[str, Grid]) -> dict:
    feats = []
    for sid, channel in sorted(channels.items()):
        grid = grids[sid]
        frame = box(-50, -50, grid.width + 50, grid.height + 50)
        poly = channel.intersection(frame)
        feats.append(
            {
                "type": "Feature",
                "properties": {"site_id": sid, "kind": "active_channel"},
                "geometry": mapping(to_crs(pixels_to_map(poly, grid.transform), grid.crs, "EPSG:4326")),
            }
        )
    return {"type": "FeatureCollection", "features": feats}
