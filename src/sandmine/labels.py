"""Labels: parsed annotations become per-observation GeoJSON and masks on the image grid."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import shapely
from rasterio import features
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from sandmine.config import LabelsParams
from sandmine.errors import SandmineError
from sandmine.files import write_text
from sandmine.raster import Grid, pixels_to_map, read_grid, read_valid, to_crs, write_cog
from sandmine.sources.labelbox import LabelRow, parse_row

log = logging.getLogger(__name__)
MINE, BACKGROUND, IGNORE = 1, 0, 255


def rasterize(row: LabelRow, grid: Grid, valid: np.ndarray, params: LabelsParams) -> tuple[np.ndarray, list[dict]]:
    """The (H, W) uint8 mask (0 not mine, 1 mine, 255 ignore) and features in EPSG:4326.

    Polygons are clipped to the image; those wholly outside are reported in `row.problems`.
    Class names match `params.mine_classes` / `ignore_classes` in any case. `params.all_touched`
    picks the pixel rule (false: pixels whose centre lies inside; true: every pixel touched).

    Raises:
        SandmineError: every polygon of the row lies outside the image (a CRS or axis-order
            mistake, not an observation without mines).
    """
    frame = box(*grid.bounds)
    mine_classes = {c.lower() for c in params.mine_classes}
    ignore_classes = {c.lower() for c in params.ignore_classes}
    mine_shapes, ignore_shapes, feats, outside = [], [], [], 0
    for k, ann in enumerate(row.annotations):
        geom = (
            pixels_to_map(ann.geometry, grid.transform)
            if ann.in_pixels
            else to_crs(ann.geometry, "EPSG:4326", grid.crs)
        )
        clipped = geom.intersection(frame)
        if clipped.is_empty:
            row.problems.append(f"object {k} ({ann.cls}) lies outside the image; skipped")
            outside += 1
            continue
        if ann.cls.lower() in mine_classes:
            mine_shapes.append(clipped)
            cls = "mine"
        elif ann.cls.lower() in ignore_classes:
            ignore_shapes.append(clipped)
            cls = "ignore"
        else:
            row.problems.append(f"object {k} has unknown class '{ann.cls}'; skipped")
            continue
        feats.append(
            {
                "type": "Feature",
                "properties": {"class": cls, "confidence": ann.confidence.lower()},
                "geometry": mapping(to_crs(clipped, grid.crs, "EPSG:4326")),
            }
        )
    if row.annotations and outside == len(row.annotations):
        raise _all_outside(row, grid, params)
    shape = (grid.height, grid.width)
    mask = np.zeros(shape, np.uint8)
    touched = params.all_touched
    if mine_shapes:
        features.rasterize([(g, MINE) for g in mine_shapes], out=mask, transform=grid.transform, all_touched=touched)
    if ignore_shapes:
        features.rasterize(
            [(g, IGNORE) for g in ignore_shapes], out=mask, transform=grid.transform, all_touched=touched
        )
    mask[~valid] = IGNORE
    has_mines = bool(mine_shapes)
    if row.activity is not None and (row.activity == "yes") != has_mines:
        row.problems.append(f"'mine activity' answer is '{row.activity}' but {len(mine_shapes)} mine polygons")
    return mask, feats


def _all_outside(row: LabelRow, grid: Grid, params: LabelsParams) -> SandmineError:
    """The error for a row whose polygons all miss the image, with both extents to compare."""
    n = len(row.annotations)
    where = f"observation '{row.obs_id}', labels.source: {params.source}"
    if params.source == "geojson":
        where += f" ({Path(params.folder) / row.obs_id}.geojson)"
    if all(a.in_pixels for a in row.annotations):
        return SandmineError(
            f"all {n} label polygon(s) lie outside the image ({grid.height} x {grid.width} px)",
            where,
            "check that the labelled image is this observation's (data row global_key = obs_id)",
        )
    labels = tuple(shapely.total_bounds([a.geometry for a in row.annotations]))
    image = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds)
    return SandmineError(
        f"all {n} label polygon(s) lie outside the image: labels span {_fmt(labels)} as lon/lat, "
        f"the image {_fmt(image)}",
        where,
        "check the CRS: coordinates must be [lon, lat] in EPSG:4326 (not [lat, lon]), or the file must name its "
        "CRS in a 'crs' member (e.g. metres in EPSG:3857 or UTM saved without one)",
    )


def _fmt(bounds: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in bounds) + ")"


def pull(
    rows: Iterable[dict | LabelRow], manifest: list[dict], images_dir: Path, out_dir: Path, params: LabelsParams
) -> dict[str, float]:
    """Write `{obs_id}.geojson`, `{obs_id}.tif` and `index.csv` for every labelled observation.

    `rows` are Labelbox export rows, or `LabelRow`s read from GeoJSON files.
    Rows not marked done, or missing, are listed in the index with status and left out of
    training; they do not stop the stage. Returns label statistics for metrics/labels.json.
    """
    parsed = {}
    for raw in rows:  # export rows (Labelbox) or rows already parsed (GeoJSON files)
        row = raw if isinstance(raw, LabelRow) else parse_row(raw, params.project_id or None)
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
        mask, feats = rasterize(row, grid, read_valid(path), params)
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
