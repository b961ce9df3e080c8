"""The Labelbox export parser on recorded rows of both shapes."""

import copy

import pytest

from sandmine.errors import SandmineError
from sandmine.sources.labelbox import parse_row

GEO_ROW = {
    "data_row": {
        "id": "ck1",
        "global_key": "betwa_a_2025-11-15",
        "row_data": {"tile_layer_url": "https://t/{z}/{x}/{y}.png", "epsg": "EPSG4326", "version": 2},
    },
    "media_attributes": {"asset_type": "tms_geo"},
    "projects": {
        "p1": {
            "labels": [
                {
                    "annotations": {
                        "objects": [
                            {
                                "feature_id": "f1",
                                "name": "mine",
                                "value": "mine",
                                "annotation_kind": "ImagePolygon",
                                "classifications": [
                                    {
                                        "name": "confidence",
                                        "value": "confidence",
                                        "radio_answer": {"name": "low", "value": "low"},
                                    }
                                ],
                                "geojson": {
                                    "type": "Polygon",
                                    "coordinates": [
                                        [[79.95, 25.93], [79.951, 25.93], [79.951, 25.931], [79.95, 25.93]]
                                    ],
                                },
                            },
                        ],
                        "classifications": [
                            {
                                "name": "mine activity",
                                "value": "mine_activity",
                                "radio_answer": {"name": "yes", "value": "yes"},
                            }
                        ],
                        "relationships": [],
                    }
                }
            ],
            "project_details": {"workflow_status": "DONE"},
        }
    },
}

PIXEL_ROW = {
    "data_row": {"id": "ck2", "global_key": "son_a_2025-11-15", "row_data": "https://storage/son_a.png"},
    "projects": {
        "p1": {
            "labels": [
                {
                    "annotations": {
                        "objects": [
                            {
                                "feature_id": "f2",
                                "name": "mine",
                                "value": "mine",
                                "annotation_kind": "ImagePolygon",
                                "polygon": [{"x": 1, "y": 1}, {"x": 10, "y": 1}, {"x": 10, "y": 10}, {"x": 1, "y": 10}],
                            },
                            {
                                "feature_id": "f3",
                                "name": "mine",
                                "value": "mine",  # a bow tie, self-intersecting
                                "polygon": [
                                    {"x": 20, "y": 20},
                                    {"x": 30, "y": 30},
                                    {"x": 30, "y": 20},
                                    {"x": 20, "y": 30},
                                ],
                            },
                        ],
                        "classifications": [],
                    }
                }
            ],
            "project_details": {"workflow_status": "DONE"},
        }
    },
}


def test_parse_geojson_row_carries_confidence_and_activity():
    row = parse_row(GEO_ROW)
    assert row.status == "done" and row.obs_id == "betwa_a_2025-11-15"
    assert row.activity == "yes"
    [ann] = row.annotations
    assert ann.cls == "mine" and ann.confidence == "low" and not ann.in_pixels
    assert ann.geometry.bounds[0] == pytest.approx(79.95)


def test_parse_pixel_row_repairs_self_intersection():
    row = parse_row(PIXEL_ROW, "p1")
    assert [a.in_pixels for a in row.annotations] == [True, True]
    assert row.annotations[0].geometry.area == pytest.approx(81)
    assert row.annotations[1].geometry.is_valid
    assert any("self-intersecting" in p for p in row.problems)
    assert row.annotations[0].confidence == "high"  # default when not answered


def test_rows_not_done_are_reported_not_parsed():
    row = copy.deepcopy(GEO_ROW)
    row["projects"]["p1"]["project_details"]["workflow_status"] = "IN_REVIEW"
    parsed = parse_row(row)
    assert parsed.status == "not_done" and not parsed.annotations
    assert "IN_REVIEW" in parsed.problems[0]


def test_row_with_no_labels_is_not_done():
    row = copy.deepcopy(GEO_ROW)
    row["projects"]["p1"]["labels"] = []
    assert parse_row(row).status == "not_done"


def test_row_without_global_key_is_an_error():
    row = copy.deepcopy(GEO_ROW)
    del row["data_row"]["global_key"]
    with pytest.raises(SandmineError, match="global_key"):
        parse_row(row)


def test_row_of_other_project_is_missing():
    assert parse_row(GEO_ROW, "other").status == "missing"
