"""River-scale survey: periods, rivers, chunks across UTM zones, seams, the GeoPackage, and reruns."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import LineString, box

from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, to_crs, write_cog
from sandmine.survey import chunks as survey_chunks
from sandmine.survey import gpkg, mosaic, seams
from sandmine.survey import periods as survey_periods
from sandmine.survey import rivers as survey_rivers


def _rivers_file(path: Path, lines: dict[str, LineString], crs: str = "EPSG:4326") -> Path:
    frame = gpd.GeoDataFrame({"name": list(lines)}, geometry=list(lines.values()), crs="EPSG:4326").to_crs(crs)
    frame.to_file(path)
    return path


# ------------------------------------------------------------------------------------------------ periods


def test_periods_in_order_with_labels():
    ps = survey_periods.parse_periods(["2026-04-01/2026-06-30", "2025-10-01/2025-12-31"], "here")
    assert [p.label for p in ps] == ["2025-10-01_2025-12-31", "2026-04-01_2026-06-30"]
    assert ps[0].days == 92 and ps[0].middle.isoformat() == "2025-11-16"
    for q in ps:  # an Earth Engine composite of q.days centred on q.middle covers exactly the period
        d = dt.timedelta
        assert q.middle - d(days=q.days // 2) == q.start and q.middle + d(days=q.days - q.days // 2) == q.end + d(
            days=1
        )


@pytest.mark.parametrize(
    "texts, words",
    [
        (["2025-10-01/2025-12-31", "2025-12-01/2026-02-28"], "overlap"),
        (["2025-10-01-2025-12-31"], "START/END"),
        (["2025-02-30/2025-03-31"], "START/END"),
        (["2025-12-31/2025-10-01"], "ends before"),
        ([], "no periods"),
    ],
)
def test_bad_periods_are_refused(texts, words):
    with pytest.raises(SandmineError, match=words) as err:
        survey_periods.parse_periods(texts, "params.yaml: survey.periods")
    assert "survey.periods" in str(err.value)


# ------------------------------------------------------------------------------------------------- rivers


def test_rivers_in_a_projected_crs_are_read_by_name(tmp_path):
    line = LineString([(82.5, 24.4), (82.6, 24.42)])
    path = _rivers_file(tmp_path / "rivers.gpkg", {"Son": line}, "EPSG:32644")  # as QGIS saves a UTM layer
    (river,) = survey_rivers.read_rivers(path, "name")
    assert river.name == "Son" and river.geometry.distance(line) < 1e-6


def test_missing_name_field_and_empty_region_are_clear(tmp_path):
    path = _rivers_file(tmp_path / "rivers.geojson", {"Son": LineString([(82.5, 24.4), (82.6, 24.42)])})
    with pytest.raises(SandmineError, match="no field 'river'.*name"):
        survey_rivers.read_rivers(path, "river")
    region = tmp_path / "region.geojson"
    gpd.GeoDataFrame(geometry=[box(70, 10, 71, 11)], crs="EPSG:4326").to_file(region)
    with pytest.raises(SandmineError, match="no river .* inside the region"):
        survey_rivers.read_rivers(path, "name", region)


def test_a_region_clips_the_rivers(tmp_path):
    lines = {"Son": LineString([(82.5, 24.4), (82.9, 24.45)]), "Ken": LineString([(80.0, 25.0), (80.1, 25.2)])}
    path = _rivers_file(tmp_path / "rivers.geojson", lines)
    region = tmp_path / "region.gpkg"
    gpd.GeoDataFrame(geometry=[box(82.6, 24.0, 82.7, 25.0)], crs="EPSG:4326").to_crs("EPSG:3857").to_file(region)
    (son,) = survey_rivers.read_rivers(path, "name", region)
    west, _, east, _ = son.geometry.bounds
    assert son.name == "Son" and west == pytest.approx(82.6) and east == pytest.approx(82.7)


# ------------------------------------------------------------------------------------------------- chunks


def test_a_river_across_a_zone_boundary_is_split_without_overlap():
    line = LineString([(83.9, 24.4), (84.1, 24.45)])  # crosses 84°E: zones 44N and 45N
    chunks = survey_chunks.plan_chunks([survey_rivers.River("Son", line)], 1000.0, 5.0)
    assert {c.zone.name for c in chunks} == {"44N", "45N"}
    assert all(c.chunk_id.startswith(c.zone.name + "_5km_") for c in chunks)
    # every piece of ground is in one chunk only: the chunks' buffer adds up to the buffer measured in one CRS
    whole = to_crs(line, "EPSG:4326", "EPSG:32644").buffer(1000.0).area
    assert sum(c.aoi.area for c in chunks) == pytest.approx(whole, rel=0.01)
    # chunk grids: 500 x 500 px, on the zone's 5 km lattice
    g = chunks[0].grid
    assert (g.height, g.width) == (500, 500) and g.bounds[0] % 5000 == 0


def test_chunk_ids_do_not_change_when_a_river_is_added():
    son = survey_rivers.River("Son", LineString([(82.5, 24.4), (82.7, 24.45)]))
    other = survey_rivers.River("Rihand", LineString([(82.55, 24.3), (82.56, 24.5)]))
    before = {c.chunk_id for c in survey_chunks.plan_chunks([son], 1000.0, 5.0)}
    after = survey_chunks.plan_chunks([son, other], 1000.0, 5.0)
    assert before < {c.chunk_id for c in after}
    both = [c for c in after if len(c.rivers) == 2]
    assert both and all(set(c.river_aois) == {"Son", "Rihand"} for c in both)


# -------------------------------------------------------------------------------------------------- seams


def _two_chunks() -> tuple[dict[str, survey_chunks.Chunk], list[survey_chunks.Chunk]]:
    zone = survey_chunks.Zone(44, True)
    out = []
    for col in (100, 101):
        sq = box(col * 1000.0, 2_700_000.0, (col + 1) * 1000.0, 2_701_000.0)
        cid = survey_chunks.chunk_id(zone, 1000.0, col, 2700)
        out.append(survey_chunks.Chunk(cid, zone, col, 2700, 1000.0, ("Son",), sq, {"Son": sq}))
    return {c.chunk_id: c for c in out}, out


def test_a_mine_on_a_seam_is_one_polygon_in_the_geopackage(tmp_path):
    from sandmine.survey.gpkg import frames as gpkg_frames

    by_id, (a, b) = _two_chunks()
    period = survey_periods.parse_periods(["2025-10-01/2025-12-31"], "t")
    pieces = []
    for chunk, cols in ((a, slice(90, 100)), (b, slice(0, 12))):  # one mine, 22 px wide, cut by the seam
        mask = np.zeros((100, 100), bool)
        mask[40:50, cols] = True
        mask[5:8, 50:53] = True  # and a small one inside each chunk
        pieces += seams.pieces(mask, mask * 0.8, chunk, (period[0].label,))
    merged = seams.merge_seams(pieces, by_id)
    assert len(merged) == 3
    seam = [m for m in merged if len(m.chunks) == 2]
    assert len(seam) == 1 and seam[0].pixels == 220 and seam[0].area_ha == pytest.approx(2.2)
    assert seam[0].mean_prob == pytest.approx(0.8)
    frames = gpkg_frames(merged, [], [a, b], by_id, period, {("Son", period[0].label): 2.38}, None)
    gpkg.write_gpkg(tmp_path / "survey.gpkg", frames)
    layers = dict(pyogrio.list_layers(tmp_path / "survey.gpkg"))
    assert set(layers) == {"mines", "change", "chunks", "area"} and layers["area"] is None
    mines = gpd.read_file(tmp_path / "survey.gpkg", layer="mines")
    assert mines.crs.to_epsg() == 4326
    assert {"river", "chunk", "period", "area_ha", "mean_prob"} <= set(mines.columns)
    one = mines[mines.chunk.str.contains(",")]
    assert len(one) == 1 and one.geometry.iloc[0].geom_type == "Polygon" and one.area_ha.iloc[0] == 2.2
    area = pyogrio.read_dataframe(tmp_path / "survey.gpkg", layer="area")
    assert area.mined_ha.iloc[0] == pytest.approx(2.2 + 2 * 0.09)


def test_small_objects_on_the_edge_wait_for_the_merge():
    mask = np.zeros((20, 20), bool)
    mask[0:2, 5:7] = True  # 4 px on the edge: may be half of a mine across the seam
    mask[10:12, 10:12] = True  # 4 px inside: too small
    kept = seams.clean_inner(mask, 5)
    assert kept[0:2, 5:7].all() and not kept[10:12, 10:12].any()


def test_vrt_mosaic_opens_and_matches_its_chunks(tmp_path):
    by_id, chunks = _two_chunks()
    sources = []
    for i, c in enumerate(chunks):
        path = tmp_path / "chunks" / f"{c.chunk_id}.tif"
        write_cog(path, np.full((100, 100), 10 * (i + 1), np.uint8), c.grid, ["mine"], nodata=255)
        sources.append((path, c.grid))
    grid = mosaic.write_vrt(tmp_path / "mosaic" / "m.vrt", sources, "mine", 255)
    assert (grid.height, grid.width) == (100, 200)
    folder = tmp_path / "mosaic"
    mosaic.vrt_to_cog(folder / "m.vrt", folder / "m.tif", "mine", {"period": "p"}, "mode", 255)
    for name in ("m.vrt", "m.tif"):
        with rasterio.open(tmp_path / "mosaic" / name) as ds:
            data = ds.read(1)
            assert ds.crs.to_epsg() == 32644 and ds.nodata == 255
            assert (data[:, :100] == 10).all() and (data[:, 100:] == 20).all()


# --------------------------------------------------------------------------------------------- whole run


BANDS = ["B2", "B3", "B4", "B8"]


def _setup(tmp_path: Path, periods: list[str]) -> Params:
    torch = pytest.importorskip("torch")
    from sandmine import models

    torch.manual_seed(0)
    model = models.build("resnet18", "unet", BANDS)
    meta = {"encoder": "resnet18", "decoder": "unet", "bands": BANDS, "mean": [0.1] * 4, "std": [0.05] * 4}
    torch.save(models.save_checkpoint(model, meta), tmp_path / "model.pt")
    line = LineString([(82.5, 24.4), (82.52, 24.405)])
    rivers = _rivers_file(tmp_path / "rivers.geojson", {"Son": line})
    rng = np.random.default_rng(0)
    for text in periods:
        folder = tmp_path / "scenes" / text.replace("/", "_")
        folder.mkdir(parents=True)
        # one scene in Web Mercator (a QGIS export), covering the river and more
        x0, y0 = to_crs(box(82.49, 24.39, 82.53, 24.415), "EPSG:4326", "EPSG:3857").bounds[0::3]
        g = Grid(CRS.from_epsg(3857), from_origin(x0, y0, 20.0, 20.0), 160, 230)
        write_cog(folder / "scene.tif", rng.uniform(0.02, 0.3, (4, 160, 230)).astype(np.float32), g, BANDS)
    p = Params()
    p.source.kind, p.source.images_dir, p.bands = "local", str(tmp_path / "scenes"), list(BANDS)
    p.survey.rivers, p.survey.river_field, p.survey.periods = str(rivers), "name", periods
    p.survey.chunk_km, p.survey.cache_dir = 1.0, str(tmp_path / "cache")
    p.aoi.buffer_m = 300.0
    p.predict.workers, p.predict.threshold, p.predict.window_px, p.predict.stride_px = 0, 0.5, 64, 32
    p.predict.device, p.predict.threads = "cpu", 1
    return p


def test_survey_runs_and_a_new_period_predicts_only_its_chunks(tmp_path, caplog):
    from sandmine.steps import survey

    first = ["2025-10-01/2025-12-31"]
    p = _setup(tmp_path, first + ["2026-04-01/2026-06-30"])
    p.survey.periods = first
    out = tmp_path / "out"
    c1 = survey.run(p, tmp_path / "model.pt", out, tmp_path / "survey.html", tmp_path / "survey.json")
    assert c1.predicted == c1.chunks > 1 and c1.predict_cached == 0
    p.survey.periods = first + ["2026-04-01/2026-06-30"]
    c2 = survey.run(p, tmp_path / "model.pt", out, tmp_path / "survey.html", tmp_path / "survey.json")
    assert c2.predicted == c2.chunks and c2.predict_cached == c1.chunks
    assert {period for _, period in c2.predicted_pairs} == {"2026-04-01_2026-06-30"}
    assert c2.exported == c2.chunks and c2.export_cached == c1.chunks
    layers = dict(pyogrio.list_layers(out / "survey.gpkg"))
    assert {"mines", "change", "chunks", "area"} <= set(layers)
    area = pyogrio.read_dataframe(out / "survey.gpkg", layer="area")
    assert list(area.period) == ["2025-10-01_2025-12-31", "2026-04-01_2026-06-30"]
    chunks = gpd.read_file(out / "survey.gpkg", layer="chunks")
    assert chunks.crs.to_epsg() == 4326 and len(chunks) == c2.chunks
    for kind in ("probability", "mask"):
        for suffix in (".vrt", ".tif"):
            with rasterio.open(out / "mosaic" / f"2026-04-01_2026-06-30_44N_{kind}{suffix}") as ds:
                assert ds.crs.to_epsg() == 32644 and ds.count == 1
    metrics = json.loads((tmp_path / "survey.json").read_text())
    assert metrics["chunks"] == c2.chunks and set(metrics["mined_ha"]) == set(c2.periods)
    assert (tmp_path / "survey.html").read_text().count("survey 44N") >= 1


def test_a_period_without_imagery_is_named(tmp_path):
    from sandmine.steps import survey

    p = _setup(tmp_path, ["2025-10-01/2025-12-31"])
    p.survey.periods = ["2025-10-01/2025-12-31", "2026-04-01/2026-06-30"]
    with pytest.raises(SandmineError, match="period 2026-04-01/2026-06-30 has no imagery"):
        survey.run(p, tmp_path / "model.pt", tmp_path / "out", tmp_path / "s.html", tmp_path / "s.json")


def test_earth_engine_exports_one_composite_per_chunk_and_period(tmp_path, monkeypatch):
    """The survey asks the Earth Engine source for each (chunk, period): a composite over the period's
    days centred on its middle, on the chunk's grid, through the source's cache."""
    from sandmine.sources import gee
    from sandmine.steps import survey

    p = _setup(tmp_path, [])
    p.source.kind, p.gee.project, p.gee.cache_dir = "gee", "my-project", str(tmp_path / "gee")
    p.survey.periods = ["2025-10-01/2025-12-31", "2026-04-01/2026-06-30"]
    calls = []

    def fake_export(jobs, s, mode, cache_dir):
        calls.append((s.window_days, mode, cache_dir, jobs))
        out = {}
        for obs_id, _bounds, date, grid in jobs:
            out[obs_id] = cache_dir / f"{obs_id}.tif"
            data = np.full((len(BANDS), grid.height, grid.width), 0.1, np.float32)
            write_cog(out[obs_id], data, grid, BANDS, {"source": "gee", "date": date})
        return out

    monkeypatch.setattr(gee, "initialize", lambda project: None)
    monkeypatch.setattr(gee, "export", fake_export)
    counts = survey.run(p, tmp_path / "model.pt", tmp_path / "out", tmp_path / "s.html", tmp_path / "s.json")
    assert [(c[0], c[1]) for c in calls] == [(92, "batch"), (91, "batch")]
    ids = [j[0] for j in calls[0][3]]
    assert len(ids) == counts.chunks and all(i.endswith("_h16_2025-10-01_2025-12-31") for i in ids)
    assert {j[2] for j in calls[0][3]} == {"2025-11-16"} and {j[2] for j in calls[1][3]} == {"2026-05-16"}
    # each chunk is exported with a margin of survey.halo_px on every side
    assert all(j[3].crs.to_epsg() == 32644 and j[3].height == 100 + 2 * 16 for j in calls[0][3])
    assert all(j[3].bounds[0] % 1000 == 1000 - 160 for j in calls[0][3])


def test_cli_survey_names_a_bad_period(capsys):
    from sandmine.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["survey", "--period", "2025-10-01/2025-13-31"])
    assert exit_.value.code == 1
    assert "period 1 '2025-10-01/2025-13-31'" in capsys.readouterr().err


def test_a_mine_on_a_zone_boundary_is_one_polygon():
    """The halves of a mine across 84°E come from the grids of zones 44N and 45N and are joined."""
    from rasterio import features as rfeatures

    line = LineString([(83.95, 24.40), (84.05, 24.40)])
    chunks = survey_chunks.plan_chunks([survey_rivers.River("Son", line)], 1000.0, 5.0)
    by_id = {c.chunk_id: c for c in chunks}
    mine = box(83.997, 24.398, 84.003, 24.402)  # about 610 x 440 m, centred on the meridian
    pieces = []
    for c in chunks:
        local = to_crs(mine, "EPSG:4326", c.crs)
        if not local.intersects(c.square):
            continue
        g = c.grid
        mask = rfeatures.rasterize([(local, 1)], out_shape=(g.height, g.width), transform=g.transform) > 0
        pieces += seams.pieces(mask & c.aoi_mask(), mask * 0.9, c, ("2025-10-01_2025-12-31",))
    assert {p.zone.name for p in pieces} == {"44N", "45N"}
    merged = seams.merge_seams(pieces, by_id)
    assert len(merged) == 1 and merged[0].geometry.geom_type == "Polygon"
    whole = to_crs(mine, "EPSG:4326", "EPSG:32644").area / 10_000
    assert merged[0].area_ha == pytest.approx(whole, rel=0.03)
    assert {cid[:3] for cid in merged[0].chunks} == {"44N", "45N"} and merged[0].mean_prob == pytest.approx(0.9)


def test_the_geopackage_is_the_same_file_on_every_run(tmp_path):
    """GDAL stamps gpkg_contents with the wall clock; the survey fixes it so DVC sees the same output."""
    import time

    import pandas as pd

    frames = {
        "mines": gpd.GeoDataFrame({"area_ha": [1.0]}, geometry=[box(80.0, 25.0, 80.01, 25.01)], crs="EPSG:4326"),
        "area": pd.DataFrame({"river": ["Son"], "mined_ha": [1.0]}),
    }
    gpkg.write_gpkg(tmp_path / "a.gpkg", frames)
    time.sleep(0.05)  # the stamp has milliseconds
    gpkg.write_gpkg(tmp_path / "b.gpkg", frames)
    assert (tmp_path / "a.gpkg").read_bytes() == (tmp_path / "b.gpkg").read_bytes()


def test_survey_writes_alerts_of_its_zones(tmp_path):
    from sandmine import alerts
    from sandmine.steps import survey

    periods = ["2025-10-01/2025-12-31", "2026-04-01/2026-06-30"]
    p = _setup(tmp_path, periods)
    zone = to_crs(box(82.49, 24.39, 82.53, 24.415), "EPSG:4326", "EPSG:3857")  # the whole river, in Web Mercator
    gpd.GeoDataFrame({"name": ["reach"]}, geometry=[zone], crs="EPSG:3857").to_file(tmp_path / "zones.gpkg")
    p.survey.zones, p.survey.zone_field, p.survey.zone_margin_m = str(tmp_path / "zones.gpkg"), "name", 0.0
    out = tmp_path / "out"
    survey.run(p, tmp_path / "model.pt", out, tmp_path / "survey.html", tmp_path / "survey.json")
    mines = pyogrio.read_dataframe(out / "survey.gpkg", layer="mines")
    layer = gpd.read_file(out / "survey.gpkg", layer="alerts")
    assert list(layer.columns) == [*alerts.COLUMNS, "geometry"]
    second = periods[1].replace("/", "_")
    # the zone holds every polygon: each polygon of the second period that is not an old one is an alert
    expected = alerts.find(mines, [q.replace("/", "_") for q in periods], alerts.read_zones(p.survey.zones, "name"),
                           0.0, p.survey.alert_growth_ha)  # fmt: skip
    assert len(layer) >= 1  # this model on these scenes: one polygon grows in the second period
    assert layer.mine_id.tolist() == expected.mine_id.tolist() and set(layer.period) <= {second}
    assert len(pd_read_csv(out / "alerts.csv")) == len(layer)
    metrics = json.loads((tmp_path / "survey.json").read_text())
    assert (
        metrics["zones"] == 1 and metrics["alerts"] == len(layer) and metrics["alerts_period"] == {second: len(layer)}
    )
    assert "id='alerts'" in (tmp_path / "survey.html").read_text()
    p.survey.zones = str(tmp_path / "missing.geojson")
    with pytest.raises(SandmineError, match="zones file not found"):
        survey.run(p, tmp_path / "model.pt", out, tmp_path / "survey.html", tmp_path / "survey.json")


def pd_read_csv(path: Path):
    import pandas as pd

    return pd.read_csv(path)
