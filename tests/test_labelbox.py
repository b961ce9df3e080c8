"""The Labelbox export parser on recorded rows of both shapes."""

import copy
import json

import pytest

from sandmine.core.errors import SandmineError
from sandmine.sources.labelbox import parse_export, parse_row

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
    assert row.annotations[1].geometry.area == pytest.approx(50)  # both lobes of the bow tie (buffer(0) kept one)
    assert "object 1 (mine) was self-intersecting; repaired into 2 part(s)" in row.problems
    assert row.annotations[0].confidence == "high"  # default when not answered


def _objects(*objects: dict) -> dict:
    row = copy.deepcopy(PIXEL_ROW)
    row["projects"]["p1"]["labels"][0]["annotations"]["objects"] = list(objects)
    return row


def _conf(answer: str) -> list[dict]:
    return [{"name": "confidence", "value": "confidence", "radio_answer": {"name": answer, "value": answer}}]


def test_a_bounding_box_is_a_rectangle_in_pixels():
    obj = {
        "name": "mine",
        "annotation_kind": "ImageBoundingBox",
        "bounding_box": {"top": 5, "left": 2, "height": 4, "width": 10},
    }
    [ann] = parse_row(_objects(obj), "p1").annotations
    assert ann.in_pixels and ann.geometry.bounds == (2, 5, 12, 9)


def test_points_lines_and_masks_are_named_not_kept():
    point = {"name": "mine", "geojson": {"type": "Point", "coordinates": [79.95, 25.93]}}
    line = {"name": "mine", "geojson": {"type": "LineString", "coordinates": [[79.95, 25.93], [79.96, 25.94]]}}
    mask = {"name": "mine", "annotation_kind": "ImageSegmentationMask", "mask": {"url": "https://x/m.png"}}
    row = parse_row(_objects(point, line, mask), "p1")
    assert row.annotations == []
    assert row.problems == [
        "object 0 (mine) is a Point, not an area; skipped",
        "object 1 (mine) is a LineString, not an area; skipped",
        "object 2 (mine) has no polygon (ImageSegmentationMask); skipped",
    ]


@pytest.mark.parametrize(
    "answer, key",
    [
        ("low", "low"),
        ("High", "high"),
        ("low_confidence", "low"),
        ("Medium confidence", "medium"),
        ("MEDIUM", "medium"),
    ],
)
def test_confidence_answers_as_other_ontologies_spell_them(answer, key):
    obj = {**PIXEL_ROW["projects"]["p1"]["labels"][0]["annotations"]["objects"][0], "classifications": _conf(answer)}
    row = parse_row(_objects(obj), "p1")
    assert row.annotations[0].confidence == key and row.problems == []


@pytest.mark.parametrize("answer", ["unsure", "high-ish or low", ""])
def test_an_unknown_confidence_is_an_error_naming_row_and_answer(answer):
    obj = {**PIXEL_ROW["projects"]["p1"]["labels"][0]["annotations"]["objects"][0], "classifications": _conf(answer)}
    with pytest.raises(SandmineError) as err:
        parse_row(_objects(obj), "p1")
    text = str(err.value)
    assert f"confidence '{answer}', not one of high, medium, low" in text and "son_a_2025-11-15" in text
    assert "ontology" in text


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


class FakeLabelbox:
    """Stands in for labelbox.Client: records what is pushed, exports recorded rows."""

    def __init__(self, export_rows, upload_errors=None):
        self.export_rows, self.upload_errors = export_rows, upload_errors
        self.datasets, self.batches = {}, []

    def __call__(self, api_key):
        assert api_key == "secret-key"
        return self

    def create_dataset(self, name):
        fake = self

        class Dataset:
            def create_data_rows(self, rows):
                fake.datasets[name] = rows

                class Task:
                    errors = fake.upload_errors

                    def wait_till_done(self):
                        pass

                return Task()

        return Dataset()

    def get_project(self, project_id):
        fake = self

        class Row:
            def __init__(self, row):
                self.json = json.dumps(row)  # the SDK's buffered stream gives JSON text

        class ExportTask:
            errors = None

            def wait_till_done(self):
                pass

            def has_errors(self):
                return False

            def get_buffered_stream(self):
                return iter([Row(r) for r in fake.export_rows])

        class Project:
            def create_batch(self, name, global_keys, priority):
                fake.batches.append((project_id, name, global_keys))

            def export(self, params):
                assert params["label_details"] and params["project_details"]
                return ExportTask()

        return Project()


@pytest.fixture
def fake_client(monkeypatch):
    import labelbox as lb

    rows = [GEO_ROW, PIXEL_ROW, {**GEO_ROW, "data_row": {"global_key": "betwa_b_2026-04-10"}}]
    fake = FakeLabelbox(rows)
    monkeypatch.setattr(lb, "Client", fake)
    monkeypatch.setenv("LABELBOX_API_KEY", "secret-key")
    return fake


def test_push_creates_rows_keyed_by_obs_id_and_a_batch(fake_client):
    from sandmine.sources.labelbox import push, row_data

    rows = [
        row_data("son_a_2025-11-15", "https://tiles.example/son_a/{z}/{x}/{y}.png", (84.18, 24.89, 84.20, 24.91)),
        row_data("betwa_a_2025-11-15", "https://storage.example/betwa_a_2025-11-15.tif"),
    ]
    assert push("proj-1", "sandmine 2025-11", rows) == ["son_a_2025-11-15", "betwa_a_2025-11-15"]
    sent = fake_client.datasets["sandmine 2025-11"]
    assert sent[0]["row_data"]["bounds"] == [[24.89, 84.18], [24.91, 84.20]] and sent[0]["media_type"] == "TMS_GEO"
    assert sent[1] == {"row_data": "https://storage.example/betwa_a_2025-11-15.tif",
                       "global_key": "betwa_a_2025-11-15", "media_type": "IMAGE"}  # fmt: skip
    assert fake_client.batches == [("proj-1", "sandmine 2025-11", ["son_a_2025-11-15", "betwa_a_2025-11-15"])]


def test_push_reports_rejected_rows(fake_client):
    from sandmine.core.errors import SandmineError
    from sandmine.sources.labelbox import push, row_data

    fake_client.upload_errors = [{"global_key": "x", "message": "Duplicate global key"}]
    with pytest.raises(SandmineError, match="Duplicate global key"):
        push("proj-1", "d", [row_data("x", "https://a/x.tif")])
    assert not fake_client.batches


def test_fetch_export_through_the_sdk_parses_both_shapes(fake_client):
    from sandmine.sources.labelbox import fetch_export

    rows = [parse_row(r) for r in fetch_export("proj-1")]
    assert [r.obs_id for r in rows][:2] == [GEO_ROW["data_row"]["global_key"], PIXEL_ROW["data_row"]["global_key"]]
    assert not rows[0].annotations[0].in_pixels and rows[1].annotations[0].in_pixels


def test_missing_api_key_is_a_clear_error(monkeypatch):
    from sandmine.core.errors import SandmineError
    from sandmine.sources.labelbox import fetch_export

    monkeypatch.delenv("LABELBOX_API_KEY", raising=False)
    with pytest.raises(SandmineError, match="LABELBOX_API_KEY is not set"):
        list(fetch_export("proj-1"))


def test_labelbox_push_command_sends_the_manifest(fake_client, tmp_path, capsys):
    import numpy as np
    from affine import Affine
    from rasterio.crs import CRS

    from sandmine.__main__ import main
    from sandmine.core.raster import Grid, write_cog

    grid = Grid(CRS.from_epsg(32644), Affine(10, 0, 500000, 0, -10, 2750000), 100, 200)
    write_cog(tmp_path / "son_a_2025-11-15.tif", np.zeros((1, 100, 200), np.float32), grid, ["B2"])
    (tmp_path / "manifest.csv").write_text(
        "obs_id,site_id,date,role,file,crs,height,width,source\n"
        "son_a_2025-11-15,son_a,2025-11-15,labelled,son_a_2025-11-15.tif,EPSG:32644,100,200,synthetic\n"
        "son_a_2026-04-10,son_a,2026-04-10,infer,son_a_2026-04-10.tif,EPSG:32644,100,200,synthetic\n"
    )
    url = "https://tiles.example/{obs_id}/{z}/{x}/{y}.png"
    main(["labelbox-push", "--project", "p1", "--dataset", "d1", "--url", url, "--geo",
          "--manifest", str(tmp_path / "manifest.csv")])  # fmt: skip
    sent = fake_client.datasets["d1"]
    assert [r["global_key"] for r in sent] == ["son_a_2025-11-15"]  # only the labelled role by default
    assert sent[0]["row_data"]["tile_layer_url"] == "https://tiles.example/son_a_2025-11-15/{z}/{x}/{y}.png"
    (south, west), (north, east) = sent[0]["row_data"]["bounds"]
    assert 80.9 < west < east < 81.1 and 24.8 < south < north < 24.9  # the image's box in lon/lat
    assert fake_client.batches == [("p1", "d1", ["son_a_2025-11-15"])]
    assert "1 data rows" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["labelbox-push", "--project", "p1", "--dataset", "d2", "--url", "{nope}",
              "--manifest", str(tmp_path / "manifest.csv")])  # fmt: skip
    assert "unknown placeholder" in capsys.readouterr().err


def _copy(status: str, labels: bool = True, x: float = 79.95) -> dict:
    """GEO_ROW exported again with `status` (labels kept, or none), its polygon moved to `x`."""
    row = copy.deepcopy(GEO_ROW)
    project = row["projects"]["p1"]
    project["project_details"]["workflow_status"] = status
    project["labels"][0]["annotations"]["objects"][0]["geojson"]["coordinates"][0][0][0] = x
    project["labels"][0]["annotations"]["objects"][0]["geojson"]["coordinates"][0][-1][0] = x
    if not labels:
        project["labels"] = []
    return row


def test_parse_export_keeps_the_finished_copy_of_a_duplicate(caplog):
    for rows in ([_copy("DONE"), _copy("IN_REVIEW", labels=False)], [_copy("IN_REVIEW", labels=False), _copy("DONE")]):
        [row] = parse_export(rows)
        assert row.status == "done" and len(row.annotations) == 1
    assert "betwa_a_2025-11-15 is in the export 2 times" in caplog.text and "IN_REVIEW, 0 label(s)" in caplog.text


def test_parse_export_counts_identical_finished_copies_once():
    assert [r.obs_id for r in parse_export([_copy("DONE"), PIXEL_ROW, _copy("DONE")], "p1")] == [
        "betwa_a_2025-11-15",
        "son_a_2025-11-15",
    ]


def test_parse_export_refuses_two_different_finished_copies():
    with pytest.raises(SandmineError, match=r"'betwa_a_2025-11-15' is in the export 2 times with different"):
        parse_export([_copy("DONE"), _copy("DONE", x=79.9505)])


def test_parse_export_keeps_the_last_of_unfinished_copies():
    [row] = parse_export([_copy("IN_REVIEW"), _copy("TO_LABEL", labels=False)])
    assert row.status == "not_done" and "TO_LABEL" in row.problems[0]
