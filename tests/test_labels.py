"""Label masks: polygons land on the right pixels; problems are reported, not fatal."""

import json

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from sandmine.core.config import LabelsParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import to_crs
from sandmine.core.schema import IGNORE, MINE, Annotation, LabelRow, rasterize_row, repaired
from sandmine.labels import confidence_weights


def _lonlat(grid, poly):
    return to_crs(poly, grid.crs, "EPSG:4326")


def test_geojson_polygon_lands_on_its_pixels(grid):
    left, _, _, top = grid.bounds
    # pixels rows 10-19, cols 20-29 in map coordinates
    square = box(left + 200, top - 200, left + 300, top - 100)
    row = LabelRow("o", "done", [Annotation("mine", _lonlat(grid, square), "high", False)], "yes")
    mask, feats = rasterize_row(row, grid, np.ones((64, 80), bool), LabelsParams())
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
    mask, _ = rasterize_row(LabelRow("o", "done", anns, "yes"), grid, valid, LabelsParams())
    assert (mask[0:5, 0:5] == MINE).all()
    assert (mask[40:50, 40:50] == IGNORE).all()
    assert (mask[:, -1] == IGNORE).all()


def test_a_repaired_bow_tie_marks_both_lobes(grid):
    bow = Polygon([(20, 20), (30, 30), (30, 20), (20, 30)])  # two triangles of 25 px² meeting at (25, 25)
    fixed = MultiPolygon(repaired([bow]))
    row = LabelRow("o", "done", [Annotation("mine", fixed, "high", True)])
    mask, feats = rasterize_row(row, grid, np.ones((64, 80), bool), LabelsParams())
    assert mask[25, 22] == MINE and mask[25, 28] == MINE  # the left and the right lobe (row, column)
    assert mask[22, 25] == 0 and mask[28, 25] == 0  # the open sides, above and below the crossing
    assert feats[0]["geometry"]["type"] == "MultiPolygon"


def test_outside_polygon_and_disagreeing_answer_reported(grid):
    far = Polygon([(1000, 1000), (1010, 1000), (1010, 1010)])
    near = Polygon([(0, 0), (5, 0), (5, 5)])
    row = LabelRow(
        "o", "done", [Annotation("ignore", near, "high", True), Annotation("mine", far, "high", True)], "yes"
    )
    mask, feats = rasterize_row(row, grid, np.ones((64, 80), bool), LabelsParams())
    assert (mask == MINE).sum() == 0 and [f["properties"]["class"] for f in feats] == ["ignore"]
    assert "object 1 (mine) lies outside the image; skipped" in row.problems
    assert any("mine activity" in p for p in row.problems)


def test_all_polygons_outside_the_image_is_an_error(grid):
    """Web-mercator metres read as lon/lat land nowhere near the image: not an observation without mines."""
    left, bottom, _, top = grid.bounds
    square = to_crs(box(left + 100, top - 300, left + 300, top - 100), grid.crs, "EPSG:3857")  # metres, no crs
    row = LabelRow("son_a_2025-11-15", "done", [Annotation("mine", square, "high", False)])
    with pytest.raises(SandmineError) as err:
        rasterize_row(row, grid, np.ones((64, 80), bool), LabelsParams(source="geojson", folder="mine_labels"))
    msg = str(err.value)
    assert "son_a_2025-11-15" in msg and "all 1 label polygon(s) lie outside the image" in msg
    assert "mine_labels/son_a_2025-11-15.geojson" in msg and "crs" in msg and "lon" in msg


def test_all_pixel_polygons_outside_the_image_is_an_error(grid):
    far = Polygon([(1000, 1000), (1010, 1000), (1010, 1010)])
    with pytest.raises(SandmineError, match="outside the image") as err:
        rasterize_row(LabelRow("o", "done", [Annotation("mine", far, "high", True)]), grid, np.ones((64, 80), bool),
                  LabelsParams(source="labelbox"))  # fmt: skip
    assert "labels.source: labelbox" in str(err.value) and "64 x 80" in str(err.value)


def test_no_annotations_is_an_observation_without_mines(grid):
    row = LabelRow("o", "done", [], "no")
    mask, feats = rasterize_row(row, grid, np.ones((64, 80), bool), LabelsParams())
    assert mask.max() == 0 and feats == [] and not row.problems


def test_class_names_match_in_any_case(grid):
    anns = [Annotation("Mine", Polygon([(0, 0), (5, 0), (5, 5), (0, 5)]), "Low", True)]
    mask, feats = rasterize_row(LabelRow("o", "done", anns), grid, np.ones((64, 80), bool), LabelsParams())
    assert (mask == MINE).sum() == 25 and feats[0]["properties"] == {"class": "mine", "confidence": "low"}


@pytest.mark.parametrize(("all_touched", "side_px"), [(False, 10), (True, 11)])
def test_all_touched_rule_on_a_polygon_covering_half_pixels(grid, all_touched, side_px):
    """A 10 x 10 px square shifted by a quarter pixel: the centre rule keeps its area, all_touched grows it."""
    square = Polygon([(10.25, 10.25), (20.25, 10.25), (20.25, 20.25), (10.25, 20.25)])
    anns = [
        Annotation("mine", square, "high", True),
        Annotation("ignore", box(40.25, 40.25, 50.25, 50.25), "high", True),
    ]
    p = LabelsParams(all_touched=all_touched)
    mask, _ = rasterize_row(LabelRow("o", "done", anns), grid, np.ones((64, 80), bool), p)
    assert (mask == MINE).sum() == side_px**2 and (mask == IGNORE).sum() == side_px**2
    assert (mask[10 : 10 + side_px, 10 : 10 + side_px] == MINE).all()


@pytest.mark.parametrize("all_touched", [False, True])
def test_confidence_weights_cover_the_same_pixels_as_the_mask(tmp_path, grid, all_touched):
    square = Polygon([(10.25, 10.25), (20.25, 10.25), (20.25, 20.25), (10.25, 20.25)])
    p = LabelsParams(all_touched=all_touched)
    mask, feats = rasterize_row(LabelRow("o", "done", [Annotation("mine", square, "low", True)]), grid,
                            np.ones((64, 80), bool), p)  # fmt: skip
    path = tmp_path / "o.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "all_touched": all_touched, "features": feats}))
    w = confidence_weights(path, grid, {"high": 1.0, "medium": 0.75, "low": 0.5})
    assert w is not None
    np.testing.assert_array_equal(w == 0.5, mask == MINE)


def test_pull_writes_the_rasterisation_rule(tmp_path, grid):
    from sandmine.core.raster import write_cog
    from sandmine.labels import pull

    (tmp_path / "images").mkdir()
    write_cog(tmp_path / "images" / "o.tif", np.full((1, 64, 80), 0.1, np.float32), grid, ["B2"])
    left, _, _, top = grid.bounds
    ann = Annotation(
        "mine", to_crs(box(left + 200, top - 200, left + 300, top - 100), grid.crs, "EPSG:4326"), "low", False
    )
    manifest = [{"obs_id": "o", "role": "labelled", "file": "o.tif"}]
    pull(
        [LabelRow("o", "done", [ann])], manifest, tmp_path / "images", tmp_path / "out", LabelsParams(all_touched=True)
    )
    doc = json.loads((tmp_path / "out" / "o.geojson").read_text())
    assert doc["all_touched"] is True  # the rule travels with the polygons, for confidence_weights


def test_rasterize_row_not_mine_is_background_kept_without_a_problem(grid):
    """A reviewer's "not a mine" (the map reports' review) is background and stays in the label GeoJSON;
    a mine drawn over part of it wins there; other unknown classes are still reported."""
    anns = [
        Annotation("not_mine", Polygon([(0, 0), (20, 0), (20, 20), (0, 20)]), "high", True),
        Annotation("mine", Polygon([(10, 10), (20, 10), (20, 20), (10, 20)]), "high", True),
        Annotation("quarry", Polygon([(40, 40), (50, 40), (50, 50), (40, 50)]), "high", True),
    ]
    row = LabelRow("o", "done", anns)
    mask, feats = rasterize_row(row, grid, np.ones((64, 80), bool), LabelsParams())
    assert (mask[0:10, 0:20] == 0).all() and (mask[10:20, 10:20] == MINE).all() and (mask == MINE).sum() == 100
    assert [f["properties"]["class"] for f in feats] == ["not_mine", "mine"]
    assert row.problems == ["object 2 has unknown class 'quarry'; skipped"]
