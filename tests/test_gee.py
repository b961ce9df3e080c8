"""Earth Engine export, offline: the real client initialised without network builds the
computation and the export task; the serialized expression and task config are checked. Task
running is tested with fake tasks that report states the way ee.batch.Task.status() does."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, grid_for_bounds, read_image, utm_crs
from sandmine.sources import gee
from sandmine.sources.base import check_one_zone

# (site, lon/lat box): the Son at Dehri; the Krishna at Vijayawada; one 0.01° east of 84° E,
# the boundary of UTM zones 44 and 45
SITES = {
    "son_dehri": (84.16, 24.88, 84.21, 24.92),
    "krishna_vijayawada": (80.58, 16.50, 80.63, 16.54),
    "gandak_boundary": (84.01, 27.00, 84.05, 27.03),
}


@pytest.fixture(scope="module")
def ee():
    import ee.apitestcase

    with (
        mock.patch.object(ee.data, "_install_cloud_api_resource", lambda: None),
        mock.patch.object(ee.data, "getAlgorithms", ee.apitestcase.GetAlgorithms),
    ):
        ee.Initialize(None, "", project="test")  # real client, no network
    return ee


def _serialized(obj) -> str:
    return obj.serialize()


@pytest.mark.parametrize("site", sorted(SITES))
def test_composite_and_task_for_sites(ee, site):
    box = SITES[site]
    grid = grid_for_bounds(box)
    s = gee.ExportSettings(bucket="sandmine-exports", prefix="runs/a")
    image = gee.composite(list(box), "2025-11-15", s)
    task = gee.export_task(image, f"{site}_2025-11-15", grid, s)
    cfg = task.config
    dest = cfg["fileExportOptions"]["cloudStorageDestination"]
    assert dest == {"bucket": "sandmine-exports", "filenamePrefix": f"runs/a/{site}_2025-11-15"}
    assert cfg["fileExportOptions"]["fileFormat"] == "GEO_TIFF"
    assert cfg["fileExportOptions"]["geoTiffOptions"]["cloudOptimized"] is True
    expr = _serialized(cfg["expression"])
    for needle in (
        "COPERNICUS/S2_SR_HARMONIZED",
        "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED",
        "COPERNICUS/S1_GRD",
        '"cs_cdf"',
        "0.6",
        '"IW"',
        "2025-10-31",  # 30-day window around the date
        "2025-11-30",
        grid.crs.to_string(),  # CRS and grid live in the expression, not in the config
    ):
        assert needle in expr, needle
    assert expr.count('"B10"') == 0  # L2A has no B10
    bands = json.loads(expr)
    assert "B8A" in json.dumps(bands) and '"CLOUD"' in expr and '"VH"' in expr
    assert str(grid.width) in expr and str(grid.height) in expr


def test_boundary_site_uses_its_own_zone(ee):
    # 84.01-84.05° E is in zone 45 (84-90° E), not 44
    assert grid_for_bounds(SITES["gandak_boundary"]).crs == utm_crs(84.03, 27.0)
    assert grid_for_bounds(SITES["gandak_boundary"]).crs.to_epsg() == 32645
    check_one_zone("gandak_boundary", SITES["gandak_boundary"])


def test_site_across_zones_is_refused():
    with pytest.raises(SandmineError, match=r"spans two UTM zones \(44 and 45, boundary at 84° E\)"):
        check_one_zone("across", (83.98, 27.0, 84.02, 27.03))


def test_l1c_exports_b10(ee):
    s = gee.ExportSettings(product="L1C", bucket="b")
    assert s.bands()[10] == "B10" and len(s.bands()) == 16
    expr = _serialized(gee.composite(list(SITES["son_dehri"]), "2026-04-10", s))
    assert "COPERNICUS/S2_HARMONIZED" in expr and '"B10"' in expr and "S2_SR_HARMONIZED" not in expr


def test_export_without_bucket_is_a_clear_error(ee):
    with pytest.raises(SandmineError, match="gee.bucket"):
        gee.export_task(mock.Mock(), "x", grid_for_bounds(SITES["son_dehri"]), gee.ExportSettings())


class FakeTask:
    """Reports a scripted sequence of states like ee.batch.Task.status()."""

    def __init__(self, states: list[dict]):
        self.states, self.started = list(states), False

    def start(self) -> None:
        self.started = True

    def status(self) -> dict:
        assert self.started, "polled before start"
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def test_tasks_poll_retry_busy_and_report_failures():
    done = {"state": "COMPLETED", "destination_uris": ["gs://b/p/a.tif"]}
    busy = {"state": "FAILED", "error_message": "Too many tasks already in the queue (3000)."}
    broken = {"state": "FAILED", "error_message": "Image.select: Pattern 'B10' did not match any bands."}
    scripts = {
        "ok": [[{"state": "RUNNING"}, {"state": "RUNNING"}, done]],
        "busy_then_ok": [[busy], [{"state": "READY"}, done]],
        "broken": [[{"state": "RUNNING"}, broken]],
        "always_busy": [[busy]] * 10,
    }
    made = {k: 0 for k in scripts}

    def factory(k):
        def make():
            made[k] += 1
            return FakeTask(scripts[k][made[k] - 1])

        return make

    sleeps = []
    s = gee.ExportSettings(bucket="b", max_retries=2, poll_s=10)
    out = gee.run_tasks({k: factory(k) for k in scripts}, s, sleep=sleeps.append)
    assert out["ok"].state == "COMPLETED" and out["ok"].uris == ["gs://b/p/a.tif"]
    assert out["busy_then_ok"].state == "COMPLETED" and out["busy_then_ok"].attempts == 2
    assert out["broken"].state == "FAILED" and "did not match" in out["broken"].error and made["broken"] == 1
    assert out["always_busy"].state == "FAILED" and out["always_busy"].attempts == 3 and made["always_busy"] == 3
    assert sleeps[0] == 10 and all(b >= a for a, b in zip(sleeps, sleeps[1:]))  # backoff grows
    text = gee.report(out)
    assert "broken: FAILED" in text and "always_busy" in text and "ok:" not in text


def test_credentials_from_environment(tmp_path, monkeypatch, ee):
    monkeypatch.delenv("SANDMINE_EE_SERVICE_ACCOUNT_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    assert gee.credentials() is None  # application default credentials
    monkeypatch.setenv("SANDMINE_EE_SERVICE_ACCOUNT_KEY", str(tmp_path / "missing.json"))
    with pytest.raises(SandmineError, match="does not exist"):
        gee.credentials()
    (tmp_path / "bad.json").write_text("{}")
    monkeypatch.setenv("SANDMINE_EE_SERVICE_ACCOUNT_KEY", str(tmp_path / "bad.json"))
    with pytest.raises(SandmineError, match="client_email") as exc:
        gee.credentials()
    assert "private_key" not in str(exc.value)
    with pytest.raises(SandmineError, match="gee.project"):
        gee.initialize("")


def _raw_export(path, bands, fill=None):
    grid = Grid(utm_crs(84.18, 24.9), from_origin(600_000, 2_760_000, 10, 10), 20, 30)
    data = (
        np.full((len(bands), 20, 30), 1234, np.int16) if fill is None else np.full((len(bands), 20, 30), fill, np.int16)
    )
    data[:, 0, 0] = gee.NODATA
    profile = {"driver": "GTiff", "height": 20, "width": 30, "count": len(bands), "dtype": "int16", "crs": grid.crs,
               "transform": grid.transform, "nodata": gee.NODATA}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return grid


def test_finalise_names_bands_and_scales(tmp_path):
    s = gee.ExportSettings()
    grid = _raw_export(tmp_path / "raw.tif", s.bands())
    gee.finalise(tmp_path / "raw.tif", tmp_path / "obs.tif", s, {"date": "2025-11-15", "obs_id": "son_a_2025-11-15"})
    img = read_image(tmp_path / "obs.tif", ["B4", "VV", "CLOUD"])
    assert img.grid == grid and img.tags["source"] == "gee" and img.tags["date"] == "2025-11-15"
    assert img.data[0, 5, 5] == pytest.approx(0.1234) and img.data[1, 5, 5] == pytest.approx(12.34)
    assert np.isnan(img.data[:, 0, 0]).all()


def test_finalise_refuses_wrong_band_count_and_empty_export(tmp_path):
    s = gee.ExportSettings()
    _raw_export(tmp_path / "short.tif", s.bands()[:-2])
    with pytest.raises(SandmineError, match="expected 15"):
        gee.finalise(tmp_path / "short.tif", tmp_path / "o.tif", s, {})
    _raw_export(tmp_path / "empty.tif", s.bands(), fill=gee.NODATA)
    with pytest.raises(SandmineError, match="export is empty"):
        gee.finalise(tmp_path / "empty.tif", tmp_path / "o.tif", s, {})
    assert not (tmp_path / "o.tif").exists()


def _fake_pixels(calls):
    """computePixels stand-in: a GeoTIFF on the requested grid, like Earth Engine returns."""
    import io

    def compute(image, grid):
        calls.append(grid)
        n = len(gee.ExportSettings().bands())
        buf = io.BytesIO()
        profile = {"driver": "GTiff", "height": grid.height, "width": grid.width, "count": n, "dtype": "int16",
                   "crs": grid.crs, "transform": grid.transform, "nodata": gee.NODATA}  # fmt: skip
        with rasterio.MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(np.full((n, grid.height, grid.width), 1000, np.int16))
            buf.write(mem.read())
        return buf.getvalue()

    return compute


def _params(tmp_path, mode="direct"):
    from pathlib import Path

    from sandmine.core.config import load_params

    p = load_params(Path(__file__).parents[1] / "params.yaml")
    p.source.kind = "gee"
    p.gee.project, p.gee.mode, p.gee.cache_dir, p.gee.bucket = "test", mode, str(tmp_path / "cache"), "bkt"
    p.gee.poll_s = 1.0
    return p


def test_export_stage_direct_caches_per_observation(ee, tmp_path, tiny_inputs, monkeypatch):
    from sandmine.core.sites import read_manifest
    from sandmine.steps import export

    calls = []
    monkeypatch.setattr(gee, "initialize", lambda project: None)
    monkeypatch.setattr(gee, "compute_pixels", _fake_pixels(calls))
    sites, obs = tiny_inputs
    p = _params(tmp_path)
    export.run(p, sites, obs, tmp_path / "images", tmp_path / "source")
    manifest = read_manifest(tmp_path / "images" / "manifest.csv")
    assert len(calls) == len(manifest) == 9 and {r["source"] for r in manifest} == {"gee"}
    img = read_image(tmp_path / "images" / "son_a_2025-11-15.tif", ["B2", "VV"])
    assert img.tags["source"] == "gee" and img.data[0, 0, 0] == pytest.approx(0.1)
    # a new observation: only it is exported, the rest come from the cache
    obs.write_text(obs.read_text() + "krishna_a_2027-01-05,krishna_a,2027-01-05,infer\n")
    export.run(p, sites, obs, tmp_path / "images", tmp_path / "source")
    assert len(calls) == 10 and (tmp_path / "images" / "krishna_a_2027-01-05.tif").exists()


def test_export_stage_batch_keeps_finished_and_reports_failures(ee, tmp_path, tiny_inputs, monkeypatch):
    from sandmine.steps import export

    monkeypatch.setattr(gee, "initialize", lambda project: None)
    made, fail = [], {"son_a_2025-11-15"}
    pixels = _fake_pixels([])

    def task(image, obs_id, grid, s):
        made.append(obs_id)
        (tmp_path / "bucket").mkdir(exist_ok=True)
        (tmp_path / "bucket" / f"{obs_id}.tif").write_bytes(pixels(image, grid))
        if obs_id in fail:
            return FakeTask([{"state": "FAILED", "error_message": "Image.clip: computation timed out."}])
        return FakeTask([{"state": "RUNNING"}, {"state": "COMPLETED", "destination_uris": [f"gs://bkt/{obs_id}.tif"]}])

    monkeypatch.setattr(gee, "export_task", task)
    monkeypatch.setattr(gee, "download", lambda uris, folder: tmp_path / "bucket" / Path(uris[0]).name)
    monkeypatch.setattr(gee.time, "sleep", lambda s: None)
    sites, obs = tiny_inputs
    p = _params(tmp_path, "batch")
    with pytest.raises(SandmineError, match=r"1 of 9 Earth Engine exports failed[\s\S]*son_a_2025-11-15.*timed out"):
        export.run(p, sites, obs, tmp_path / "images", tmp_path / "source")
    assert len(list((tmp_path / "cache").glob("*.tif"))) == 8  # the finished ones are kept
    fail.clear()
    made.clear()
    export.run(p, sites, obs, tmp_path / "images", tmp_path / "source")
    assert made == ["son_a_2025-11-15"]  # only the failed observation is exported again
    assert len(list((tmp_path / "images").glob("*.tif"))) == 9


def test_export_stage_refuses_a_site_across_zones(ee, tmp_path, monkeypatch):
    from sandmine.steps import export

    sites = tmp_path / "sites.geojson"
    box = [[83.98, 27.0], [84.02, 27.0], [84.02, 27.03], [83.98, 27.03], [83.98, 27.0]]
    sites.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"site_id": "gandak_x", "river": "Gandak", "basin": "Ganga"},
         "geometry": {"type": "Polygon", "coordinates": [box]}}]}))  # fmt: skip
    obs = tmp_path / "obs.csv"
    obs.write_text("obs_id,site_id,date,role\ngandak_x_2025-11-15,gandak_x,2025-11-15,labelled\n")
    with pytest.raises(SandmineError, match="gandak_x.*spans two UTM zones"):
        export.run(_params(tmp_path), sites, obs, tmp_path / "images", tmp_path / "source")


def test_rivers_query_clips_the_asset_to_the_sites(ee, monkeypatch):
    """`gee.rivers` asks Earth Engine for one FeatureCollection: the asset, filtered to the sites'
    boxes and clipped to them; the answer (GeoJSON) comes back as it is."""
    seen = {}
    answer = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[84.0, 27.0], [84.02, 27.01]]},
                "properties": {"RIV_ORD": 4},
            }
        ],
    }

    def compute_value(obj):
        seen["expr"] = obj.serialize()
        return answer

    monkeypatch.setattr(ee.data, "computeValue", compute_value)
    out = gee.rivers("WWF/HydroSHEDS/v1/FreeFlowingRivers", [SITES["gandak_boundary"], SITES["son_dehri"]])
    assert out == answer
    expr = json.loads(seen["expr"])
    text = json.dumps(expr)
    assert "WWF/HydroSHEDS/v1/FreeFlowingRivers" in text
    assert "Collection.filterBounds" in text or "Collection.filter" in text
    assert "Feature.intersection" in text and "Collection.map" in text
    coords = json.dumps([84.01, 27.0])[1:-1].replace(" ", "")
    assert coords.split(",")[0] in text.replace(" ", "")  # the boundary site's box is in the query


def test_rivers_empty_answer_is_an_error_naming_the_asset(ee, monkeypatch):
    monkeypatch.setattr(ee.data, "computeValue", lambda obj: {"type": "FeatureCollection", "features": []})
    with pytest.raises(SandmineError, match="no river of users/x/rivers"):
        gee.rivers("users/x/rivers", [SITES["son_dehri"]])
