"""Labels: parsed annotations become per-observation GeoJSON and masks on the image grid."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rasterio import features
from rasterio.crs import CRS
from rasterio.transform import Affine
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from sandmine.core.config import LabelsParams
from sandmine.core.errors import SandmineError
from sandmine.core.files import write_text
from sandmine.core.raster import Grid, read_grid, read_valid, to_crs, write_cog
from sandmine.core.schema import IGNORE, MINE, LabelRow, rasterize_row

log = logging.getLogger(__name__)


def pull(
    rows: Iterable[LabelRow], manifest: list[dict], images_dir: Path, out_dir: Path, params: LabelsParams
) -> dict[str, float]:
    """Write `{obs_id}.geojson`, `{obs_id}.tif` and `index.csv` for every labelled observation.

    `rows` are parsed by a source (Labelbox export rows, GeoJSON files), one per observation (a
    second row for one is an error: sources resolve their duplicates by a stated rule). Rows not
    marked done, or missing, are listed in the index with status and left out of training; they do
    not stop the stage. Returns label statistics for metrics/labels.json.
    """
    parsed: dict[str, LabelRow] = {}
    for row in rows:
        if row.obs_id in parsed:  # a source resolves its duplicates (labelbox.parse_export): none is dropped here
            raise SandmineError(
                f"observation '{row.obs_id}' has two label rows ({parsed[row.obs_id].status}, {row.status})",
                "labels export",
                "keep one row per observation in the export",
            )
        parsed[row.obs_id] = row
    index, n_mine, n_valid, n_polys, n_done = [], 0, 0, 0, 0
    for rec in tqdm(manifest, desc="labels", unit="obs"):
        if rec["role"] != "labelled":
            continue
        obs_id = rec["obs_id"]
        row = parsed.pop(obs_id, None) or LabelRow(obs_id, "missing", problems=["no row in the export"])  # type: ignore[arg-type]
        if row.status != "done":
            log.warning("%s: labels %s (%s); left out", obs_id, row.status, "; ".join(row.problems))
            index.append([obs_id, row.status, 0, 0, "; ".join(row.problems)])
            continue
        path = images_dir / rec["file"]
        grid = read_grid(path)
        mask, feats = rasterize_row(row, grid, read_valid(path), params)
        doc = {"type": "FeatureCollection", "all_touched": params.all_touched, "features": feats}
        write_text(out_dir / f"{obs_id}.geojson", json.dumps(doc) + "\n")
        write_cog(
            out_dir / f"{obs_id}.tif", mask, grid, ["label"], {"values": "0=not mine,1=mine,255=ignore"}, nodata=None
        )
        mines = int((mask == MINE).sum())
        valid = int((mask != IGNORE).sum())
        n_mine, n_valid, n_done = n_mine + mines, n_valid + valid, n_done + 1
        n_polys += sum(f["properties"]["class"] == "mine" for f in feats)
        for p in row.problems:
            log.warning("%s: %s", obs_id, p)
        index.append(
            [
                obs_id,
                "done",
                sum(f["properties"]["class"] == "mine" for f in feats),
                round(mines / max(valid, 1), 5),
                "; ".join(row.problems),
            ]
        )
    for obs_id in sorted(parsed):
        log.warning("export row '%s' matches no labelled observation; ignored", obs_id)
    if n_done == 0:
        raise SandmineError(
            "no observation has finished labels",
            "labels export",
            "finish labelling in Labelbox or check 'labels.project_id'",
        )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["obs_id", "status", "n_mine_polygons", "mine_fraction", "problems"])
    w.writerows(index)
    write_text(out_dir / "index.csv", buf.getvalue())
    return {
        "observations_labelled": n_done,
        "observations_left_out": len(index) - n_done,
        "mine_polygons": n_polys,
        "mine_pixel_fraction": n_mine / max(n_valid, 1),
    }


def confidence_weights(geojson: Path, grid: Grid, weights: dict[str, float]) -> np.ndarray | None:
    """(H, W) float32 loss weights: a mine polygon's pixels weigh `weights[confidence]`, others 1.

    None when every weight is 1 (nothing to weigh). Where polygons overlap, the lower weight wins.
    Pixels follow the rule the mask was drawn with (the file's `all_touched` member, written by
    `pull`), so a low-confidence polygon's edge pixels are never mine at full weight.
    """
    found = confidence_shapes(geojson, grid.crs, weights)
    if found is None:
        return None
    return weight_window(found[0], found[1], grid.transform, grid.height, grid.width)


def confidence_shapes(
    geojson: Path, crs: CRS | str, weights: dict[str, float]
) -> tuple[list[tuple[BaseGeometry, float]], bool] | None:
    """The mine polygons of `geojson` whose weight is not 1, in `crs`, lowest weight last, and the
    file's `all_touched` rule; None when every weight is 1 (see `confidence_weights`)."""
    if all(w == 1.0 for w in weights.values()):
        return None
    try:
        doc = json.loads(geojson.read_text())
        feats = doc["features"]
    except (OSError, ValueError, KeyError) as exc:
        raise SandmineError(
            f"cannot read label polygons ({exc})", str(geojson), "re-run the annotate-pull stage"
        ) from exc
    shapes = []
    for f in feats:
        if f["properties"].get("class") != "mine":
            continue
        w = weights.get(str(f["properties"].get("confidence", "high")).lower(), 1.0)
        if w != 1.0:
            shapes.append((to_crs(shape(f["geometry"]), "EPSG:4326", crs), w))
    return sorted(shapes, key=lambda s: -s[1]), bool(doc.get("all_touched", False))


def weight_window(
    shapes: list[tuple[BaseGeometry, float]], all_touched: bool, transform: Affine, height: int, width: int
) -> np.ndarray:
    """(height, width) float32 weights of `shapes` (from `confidence_shapes`) on the grid of `transform`."""
    out = np.ones((height, width), np.float32)
    for geom, w in shapes:  # one at a time, in order: the lowest weight is drawn last and wins
        features.rasterize([(geom, w)], out=out, transform=transform, all_touched=all_touched)
    return out
