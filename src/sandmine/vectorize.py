"""Polygons of predicted mining with their area in hectares and mean probability."""

from __future__ import annotations

import numpy as np
from rasterio import features
from scipy import ndimage
from shapely.geometry import mapping, shape

from sandmine.core.raster import Grid, check_metric_grid, to_crs


def polygons(
    prob: np.ndarray, grid: Grid, threshold: float, min_area_ha: float, properties: dict[str, str]
) -> list[dict]:
    """GeoJSON features (EPSG:4326) of connected areas with `prob >= threshold`.

    Each has `area_ha` (computed in the image's metric CRS), `mean_prob`, and `properties`.
    """
    check_metric_grid(grid, _where(properties))  # areas below are in CRS units²: metres on the ground only
    mask = (prob >= threshold).astype(np.uint8)
    regions, n = ndimage.label(mask)
    means = ndimage.mean(prob, regions, np.arange(1, n + 1))  # one pass, not one scan per polygon
    out = []
    for geom, value in features.shapes(regions, mask=mask > 0, transform=grid.transform):
        poly = shape(geom)
        area_ha = poly.area / 10_000.0
        if area_ha < min_area_ha:
            continue
        mean_prob = float(means[int(value) - 1])
        out.append(
            {
                "type": "Feature",
                "properties": {**properties, "area_ha": round(area_ha, 3), "mean_prob": round(mean_prob, 3)},
                "geometry": mapping(to_crs(poly, grid.crs, "EPSG:4326")),
            }
        )
    return out


def class_polygons(
    classes: np.ndarray, grid: Grid, names: dict[int, str], min_area_ha: float, properties: dict[str, str]
) -> list[dict]:
    """GeoJSON features (EPSG:4326) of the areas of each class value in `names`, each with
    `change` (the class name) and `area_ha`; areas smaller than `min_area_ha` are dropped."""
    check_metric_grid(grid, _where(properties))
    out = []
    for geom, value in features.shapes(classes, mask=classes > 0, transform=grid.transform):
        if int(value) not in names:
            continue
        poly = shape(geom)
        area_ha = poly.area / 10_000.0
        if area_ha < min_area_ha:
            continue
        out.append(
            {
                "type": "Feature",
                "properties": {**properties, "change": names[int(value)], "area_ha": round(area_ha, 3)},
                "geometry": mapping(to_crs(poly, grid.crs, "EPSG:4326")),
            }
        )
    return out


def _where(properties: dict[str, str]) -> str:
    """The image that polygons come from, for messages."""
    return str(properties.get("image") or properties.get("obs_id") or "the image's grid")
