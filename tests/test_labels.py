"""Label masks: polygons land on the right pixels; problems are reported, not fatal."""

import numpy as np
from shapely.geometry import Polygon, box

from sandmine.config import LabelsParams
from sandmine.labels import IGNORE, MINE, rasterize
from sandmine.raster import to_crs
from sandmine.sources.labelbox import Annotation, LabelRow


def _lonlat(grid, poly):
    return to_crs(poly, grid.crs, "EPSG:4326")


def test_geojson_polygon_lands_on_its_pixels(grid):
    left, _, _, top = grid.bounds
    # pixels rows 10-19, cols 20-29 in map coordinates
    square = box(left + 200, top - 200, left + 300, top - 100)
    row = LabelRow("o", "done", [Annotation("mine", _lonlat(grid, square), "high", False)], "yes")
    mask, feats = rasterize(row, grid, np.ones((64, 80), bool), LabelsParams())
    assert (mask[10:20, 20:30] == MINE).all()
    assert mask.sum() == MINE * 100
    assert feats[0]["properties"] == {"class": "mine", "confidence": "high"}
    assert not row.problems


def test_pixel_polygon_ignore_class_and_nodata(grid):
    anns = [
        Annotation("mine", Polygon([(0, 0), (5, 0), (5, 5), (0, 5)]), "high", True),
        Annotation("ignore", Polygon([(40, 40), (50, 40), (50, 50), (40, 50)]), "low", True),
    ]
    valid = np.ones((64, 80), bool)
    valid[:, -1] = False
    mask, _ = rasterize(LabelRow("o", "done", anns, "yes"), grid, valid, LabelsParams())
    assert (mask[0:5, 0:5] == MINE).all()
    assert (mask[40:50, 40:50] == IGNORE).all()
    assert (mask[:, -1] == IGNORE).all()


def test_outside_polygon_and_disagreeing_answer_reported(grid):
    far = Polygon([(1000, 1000), (1010, 1000), (1010, 1010)])
    row = LabelRow("o", "done", [Annotation("mine", far, "high", True)], "yes")
    mask, feats = rasterize(row, grid, np.ones((64, 80), bool), LabelsParams())
    assert mask.max() == 0 and feats == []
    assert any("outside the image" in p for p in row.problems)
    assert any("mine activity" in p for p in row.problems)
