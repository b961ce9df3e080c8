"""Mask and polygons a strip at a time equal the whole-array mask and polygons (`sandmine.strips`)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import shape

from sandmine import monitoring, strips
from sandmine.core.metrics import level
from sandmine.core.raster import Grid, write_cog
from sandmine.vectorize import polygons

GRID = Grid(CRS.from_epsg(32644), from_origin(500_000, 2_800_000, 10, 10), 300, 260)


def _probability(tmp_path):
    """Smooth blobs (many taller than a strip, with holes and diagonal touches) plus speckle, as uint8."""
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(GRID.height, GRID.width)), 5)
    q = np.clip((base - base.min()) / np.ptp(base) * 255, 0, 255).astype(np.uint8)
    q[rng.uniform(size=q.shape) < 0.01] = 250  # single pixels: dropped by the minimum mapping unit
    q[100:180, 40:42] = 240  # a thin mine 80 rows tall across several strips
    q[63, 200], q[64, 201] = 250, 250  # two pixels touching only by a corner, across the seam at row 64
    write_cog(tmp_path / "p.tif", q, GRID, ["mine_probability"])
    return q


def _normal(feats):
    return sorted((shapely.normalize(shape(f["geometry"])).wkt, f["properties"]) for f in feats)


@pytest.mark.parametrize("rows", [1, 7, 64, 1000])
def test_mask_and_polygons_equal_the_whole_array_path(tmp_path, rows):
    q = _probability(tmp_path)
    thr, min_px, min_ha = 0.6, 5, 0.05
    mask = monitoring.clean(q >= level(thr), min_px)  # the whole-array path `sandmine predict` had
    old = polygons(np.where(mask, q / 255.0, 0.0), GRID, thr, min_ha, {"image": "p.tif"})
    props = {"image": "p.tif"}
    new = strips.mask_and_polygons(tmp_path / "p.tif", thr, min_px, min_ha, props, tmp_path / "m.tif", rows)
    with rasterio.open(tmp_path / "m.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), mask.astype(np.uint8))
        assert ds.descriptions == ("mine",)
    assert len(old) > 20 and _normal(new) == _normal(old)  # same rings, vertex for vertex, same properties
    tall = [f for f in new if shape(f["geometry"]).bounds[3] - shape(f["geometry"]).bounds[1] > 0.005]
    assert tall  # some polygons span many strips


def test_a_corner_touch_across_a_seam_joins_objects_for_the_minimum_size(tmp_path):
    """Two pixels meeting by a corner across a strip seam are one 8-connected object of 2 px (kept at
    min 2) but two 4-connected polygons of 1 px, as in the whole-array path."""
    q = np.zeros((GRID.height, GRID.width), np.uint8)
    q[63, 200], q[64, 201] = 250, 250
    write_cog(tmp_path / "p.tif", q, GRID, ["mine_probability"])
    feats = strips.mask_and_polygons(tmp_path / "p.tif", 0.5, 2, 0.0, {}, tmp_path / "m.tif", rows=64)
    assert len(feats) == 2 and all(f["properties"]["area_ha"] == 0.01 for f in feats)
    assert strips.mask_and_polygons(tmp_path / "p.tif", 0.5, 3, 0.0, {}, None, rows=64) == []
