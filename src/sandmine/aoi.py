"""The area of interest: everything within `buffer_m` of a river, on each image's grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rasterio import features
from scipy import ndimage
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from sandmine.core.config import AoiParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, Image, to_crs


def read_rivers(path: Path) -> list[BaseGeometry]:
    """River geometries (any type) in EPSG:4326 from a GeoJSON file."""
    if not path.exists():
        raise SandmineError(
            "rivers file not found", str(path), "use a source that delivers rivers, or set 'aoi.rivers: water_index'"
        )
    doc = json.loads(path.read_text())
    return [shape(f["geometry"]) for f in doc.get("features", []) if f.get("geometry")]


def from_vector(rivers: list[BaseGeometry], grid: Grid, params: AoiParams) -> BaseGeometry:
    """AOI polygon in the image CRS: rivers simplified by `simplify_m`, buffered by `buffer_m`."""
    reach = box(*grid.bounds).buffer(params.buffer_m)
    parts = [to_crs(g, "EPSG:4326", grid.crs) for g in rivers]
    near = [p.intersection(reach) for p in parts if p.intersects(reach)]
    river = unary_union(near) if near else box(0, 0, 0, 0)
    return river.simplify(params.simplify_m).buffer(params.buffer_m).intersection(box(*grid.bounds))


def water_mask(image: Image) -> np.ndarray:
    """Open water from the modified normalised difference water index (B3, B11)."""
    g, s = image.data[image.bands.index("B3")], image.data[image.bands.index("B11")]
    mndwi = (g - s) / np.maximum(g + s, 1e-6)
    water = ndimage.binary_opening(np.nan_to_num(mndwi) > 0.2, iterations=1)
    labels, n = ndimage.label(water)
    if n == 0:
        return water
    sizes = ndimage.sum(water, labels, range(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)  # the river is the largest water body


def from_water_index(image: Image, params: AoiParams) -> np.ndarray:
    """AOI mask when no river vector exists: buffer the largest water body of the image."""
    for band in ("B3", "B11"):
        if band not in image.bands:
            raise SandmineError(f"'aoi.rivers: water_index' needs band {band}", "params.yaml: bands")
    water = water_mask(image)
    if not water.any():
        return np.zeros(water.shape, bool)
    return ndimage.distance_transform_edt(~water) * image.grid.res_m <= params.buffer_m


def polygon_of(mask: np.ndarray, grid: Grid) -> BaseGeometry:
    """The mask's outline as a polygon in the image CRS (for viewing)."""
    shapes = [shape(g) for g, v in features.shapes(mask.astype(np.uint8), transform=grid.transform) if v == 1]
    return unary_union(shapes) if shapes else box(0, 0, 0, 0)


def to_geojson(poly: BaseGeometry, grid: Grid, obs_id: str) -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"obs_id": obs_id},
                "geometry": mapping(to_crs(poly, grid.crs, "EPSG:4326")),
            }
        ],
    }
