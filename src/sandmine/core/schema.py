"""The label schema: mask values, a labelled observation's polygons, and how a row is drawn on its image."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from rasterio.warp import transform_bounds
from shapely.geometry import Polygon, box, mapping
from shapely.geometry.base import BaseGeometry

from sandmine.core.config import LabelsParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, pixels_to_map, rasterize, to_crs

MINE, BACKGROUND, IGNORE = 1, 0, 255
# a polygon a reviewer marked "not a mine" (the map reports' review): background, like any unlabelled pixel of a
# done row, but named so it is kept in the label GeoJSON as the reviewer's negative and raises no problem line
NOT_MINE = "not_mine"
# the class each verdict of the map reports' review becomes: unsure and unreviewed polygons (of an observation the
# reviewer touched) are `ignore` (255, out of the loss), so an unchecked prediction is never taught as background
VERDICT_CLASS = {"mine": "mine", "not_mine": NOT_MINE, "unsure": "ignore", "unreviewed": "ignore", "missed": "mine"}


@dataclass
class Annotation:
    """One drawn polygon. `geometry` is in EPSG:4326 (geojson rows) or pixels (image rows)."""

    cls: str
    geometry: BaseGeometry
    confidence: str
    in_pixels: bool


@dataclass
class LabelRow:
    """The labels of one observation (one data row) and what quality control found."""

    obs_id: str
    status: str
    annotations: list[Annotation] = field(default_factory=list)
    activity: str | None = None
    problems: list[str] = field(default_factory=list)


def geometry_parts(geom: BaseGeometry) -> list[BaseGeometry]:
    """The simple geometries inside `geom`, collections and multi-geometries flattened."""
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in geometry_parts(g)]
    return [geom]


def polygon_parts(geom: BaseGeometry) -> list[Polygon]:
    """The non-empty polygons inside `geom` (a collection keeps its polygon parts)."""
    return [p for p in geometry_parts(geom) if isinstance(p, Polygon) and not p.is_empty]


def repaired(polygons: list[Polygon]) -> list[Polygon]:
    """Self-intersecting polygons made valid with every lobe kept (`buffer(0)` keeps one lobe of a bow
    tie); the lines and points a repair leaves (a spike, a doubled edge) are dropped."""
    return [q for p in polygons for q in polygon_parts(shapely.make_valid(p))]


def rasterize_row(row: LabelRow, grid: Grid, valid: np.ndarray, params: LabelsParams) -> tuple[np.ndarray, list[dict]]:
    """The (H, W) uint8 mask (0 not mine, 1 mine, 255 ignore) and features in EPSG:4326.

    Polygons are clipped to the image; those wholly outside are reported in `row.problems`.
    Class names match `params.mine_classes` / `ignore_classes` in any case; `not_mine` (`NOT_MINE`) is
    background (0) unless a mine or ignore polygon covers it. `params.all_touched`
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
        elif ann.cls.lower() == NOT_MINE:
            cls = NOT_MINE  # background: the mask starts at 0
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
    mask = np.zeros((grid.height, grid.width), np.uint8)
    rasterize(mine_shapes, grid, value=MINE, all_touched=params.all_touched, out=mask)
    rasterize(ignore_shapes, grid, value=IGNORE, all_touched=params.all_touched, out=mask)
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
