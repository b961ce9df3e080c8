"""Survey alerts: the new / expanded rule, the margin, zones in any CRS, bad zone files, the written layer and CSV."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import LineString, box

from sandmine import alerts, webmap
from sandmine.core.config import SurveyParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import to_crs
from sandmine.survey import gpkg

UTM = "EPSG:32644"
E0, N0 = 500_000.0, 2_700_000.0  # UTM 44N, about (81°E, 24.4°N)
P1, P2, P3 = "2025-10-01_2025-12-31", "2026-04-01_2026-06-30", "2026-10-01_2026-12-31"


def _box(x0: float, y0: float, x1: float, y1: float):
    """A rectangle in metres from (E0, N0), in EPSG:4326."""
    return to_crs(box(E0 + x0, N0 + y0, E0 + x1, N0 + y1), UTM, "EPSG:4326")


def _mines(rows: list[tuple[str, tuple[float, float, float, float]]]) -> gpd.GeoDataFrame:
    """The survey's layer `mines` from (period, metre box) rows."""
    recs = [{"river": "Son", "chunk": "c", "period": q, "area_ha": 0.0, "mean_prob": 0.9} for q, _ in rows]
    return gpd.GeoDataFrame(pd.DataFrame(recs), geometry=[_box(*b) for _, b in rows], crs="EPSG:4326")


def _zones(shapes: dict[str, object], crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"zone": list(shapes)}, geometry=list(shapes.values()), crs=crs)


ZONE = {"reach": _box(0, 0, 2000, 1000)}
ROWS = [
    (P1, (100, 100, 300, 300)),  # 1: old, seen again in P2 as 2
    (P2, (110, 100, 300, 310)),  # 2: the same mine, outline jittered: no alert
    (P2, (500, 100, 700, 300)),  # 3: new, 4 ha
    (P1, (900, 100, 1100, 300)),  # 4: old
    (P2, (900, 100, 1200, 300)),  # 5: expanded by 100 x 200 m = 2 ha
    (P1, (1400, 100, 1600, 300)),  # 6: old
    (P2, (1400, 100, 1620, 300)),  # 7: grew 0.4 ha: under alert_growth_ha, no alert
    (P1, (1700, 600, 1900, 800)),  # 8: first period, nothing before it: no alert
]


def test_find_new_and_expanded_against_the_previous_period():
    found = alerts.find(_mines(ROWS), [P1, P2], _zones(ZONE), 0.0, 1.0)
    assert list(found.columns) == [*alerts.COLUMNS, "geometry"]
    assert list(zip(found.mine_id, found.kind)) == [(3, "new"), (5, "expanded")]
    assert set(found.period) == {P2} and set(found.previous) == {P1} and set(found.zone) == {"reach"}
    assert found.area_ha.tolist() == pytest.approx([4.0, 6.0], abs=0.01)
    assert found.grown_ha.tolist() == pytest.approx([4.0, 2.0], abs=0.01)
    assert found.zone_ha.tolist() == pytest.approx([4.0, 6.0], abs=0.01)
    assert found.distance_m.tolist() == [0.0, 0.0]
    assert found.mean_prob.tolist() == [0.9, 0.9]
    lon, lat = to_crs(box(E0 + 600, N0 + 200, E0 + 600, N0 + 200), UTM, "EPSG:4326").bounds[:2]
    assert (found.lon[0], found.lat[0]) == pytest.approx((lon, lat), abs=1e-5)  # the centroid


def test_find_a_lower_growth_threshold_makes_the_small_growth_an_alert():
    found = alerts.find(_mines(ROWS), [P1, P2], _zones(ZONE), 0.0, 0.3)
    assert list(zip(found.mine_id, found.kind)) == [(3, "new"), (5, "expanded"), (7, "expanded")]


def test_find_each_period_against_the_one_just_before():
    rows = [(P1, (100, 100, 300, 300)), (P3, (100, 100, 300, 300))]  # gone in P2, back in P3: new again
    found = alerts.find(_mines(rows), [P1, P2, P3], _zones(ZONE), 0.0, 1.0)
    assert list(zip(found.mine_id, found.period, found.previous, found.kind)) == [(2, P3, P2, "new")]


def test_find_only_in_a_zone_or_its_margin():
    rows = [(P2, (2150, 100, 2350, 300))]  # 150 m east of the zone
    assert alerts.find(_mines(rows), [P1, P2], _zones(ZONE), 100.0, 1.0).empty
    found = alerts.find(_mines(rows), [P1, P2], _zones(ZONE), 200.0, 1.0)
    assert found.distance_m.tolist() == pytest.approx([150.0], abs=0.5)
    assert found.zone_ha.tolist() == [0.0] and found.area_ha.tolist() == pytest.approx([4.0], abs=0.01)


def test_find_a_polygon_in_two_zones_is_an_alert_of_each():
    zones = _zones({"west": _box(0, 0, 600, 1000), "east": _box(600, 0, 2000, 1000)})
    found = alerts.find(_mines([(P2, (500, 100, 700, 300))]), [P1, P2], zones, 0.0, 1.0)
    assert sorted(zip(found.zone, found.zone_ha)) == [("east", pytest.approx(2.0)), ("west", pytest.approx(2.0))]
    m = alerts.metrics(found, zones, [P1, P2])
    assert m["alerts"] == 2 and m["alerts_ha"] == pytest.approx(4.0, abs=0.01)  # the polygon's hectares once
    assert m["alerts_period"] == {P2: 2} and m["zones"] == 2 and m["alerts_new"] == 2


def test_read_zones_in_a_projected_crs_gives_the_same_alerts(tmp_path):
    shapes = {"reach": box(E0, N0, E0 + 2000, N0 + 1000), "other": box(E0 + 5000, N0, E0 + 6000, N0 + 1000)}
    path = tmp_path / "zones.gpkg"
    gpd.GeoDataFrame({"name": list(shapes)}, geometry=list(shapes.values()), crs=UTM).to_file(path, driver="GPKG")
    zones = alerts.read_zones(path, "name")
    assert zones.crs.to_epsg() == 4326 and sorted(zones.zone) == ["other", "reach"]
    found = alerts.find(_mines(ROWS), [P1, P2], zones, 0.0, 1.0)
    assert list(zip(found.zone, found.mine_id, found.kind)) == [("reach", 3, "new"), ("reach", 5, "expanded")]
    assert found.zone_ha.tolist() == pytest.approx([4.0, 6.0], abs=0.01)


def test_read_zones_joins_features_of_one_name(tmp_path):
    path = tmp_path / "zones.geojson"
    shapes = [_box(0, 0, 500, 500), _box(1000, 0, 1500, 500), _box(3000, 0, 3500, 500)]
    gpd.GeoDataFrame({"name": ["a", "a", None]}, geometry=shapes, crs="EPSG:4326").to_file(path)
    zones = alerts.read_zones(path, "name")
    assert zones.zone.tolist() == [alerts.UNNAMED, "a"]
    assert zones.geometry.iloc[1].geom_type == "MultiPolygon"


def test_read_zones_without_crs_is_a_clear_error(tmp_path):
    path = tmp_path / "zones.shp"
    with pytest.warns(UserWarning, match="crs"):  # GDAL writes no .prj
        gpd.GeoDataFrame({"name": ["a"]}, geometry=[box(E0, N0, E0 + 100, N0 + 100)]).to_file(path)
    with pytest.raises(SandmineError) as err:
        alerts.read_zones(path, "name")
    assert "zones file has no CRS" in str(err.value) and str(path) in str(err.value)


def test_read_zones_bad_field_and_lines_without_margin_are_clear(tmp_path):
    path = tmp_path / "zones.geojson"
    gpd.GeoDataFrame({"title": ["a"]}, geometry=[_box(0, 0, 100, 100)], crs="EPSG:4326").to_file(path)
    with pytest.raises(SandmineError) as err:
        alerts.read_zones(path, "name")
    text = str(err.value)
    assert "zones have no field 'name'" in text and "survey.zone_field" in text and "title" in text
    assert str(path) in text
    line = tmp_path / "line.geojson"
    reach = to_crs(LineString([(E0, N0), (E0 + 1000, N0)]), UTM, "EPSG:4326")
    gpd.GeoDataFrame({"name": ["bridge"]}, geometry=[reach], crs="EPSG:4326").to_file(line)
    with pytest.raises(SandmineError, match="zone_margin_m"):
        alerts.read_zones(line, "name", margin_m=0.0)
    assert alerts.read_zones(line, "name", margin_m=300.0).zone.tolist() == ["bridge"]
    with pytest.raises(SandmineError, match="zones file not found"):
        alerts.read_zones(tmp_path / "nope.geojson", "name")


def test_for_survey_empty_zones_writes_nothing(tmp_path):
    s = SurveyParams()
    assert s.zones == ""  # the schema's default: no alerts unless a file is named
    assert alerts.for_survey(s, _mines(ROWS), [P1, P2], tmp_path / "alerts.csv") is None
    assert not (tmp_path / "alerts.csv").exists()


def test_for_survey_writes_the_csv_and_the_geopackage_layer(tmp_path):
    path = tmp_path / "zones.geojson"
    gpd.GeoDataFrame({"name": ["reach"]}, geometry=list(ZONE.values()), crs="EPSG:4326").to_file(path)
    s = SurveyParams(zones=str(path), zone_field="name", zone_margin_m=0.0)
    mines = _mines(ROWS)
    found = alerts.for_survey(s, mines, [P1, P2], tmp_path / "alerts.csv")
    assert found is not None
    gpkg.write_gpkg(tmp_path / "survey.gpkg", {"mines": mines, "alerts": found.alerts})
    layer = gpd.read_file(tmp_path / "survey.gpkg", layer="alerts")
    assert layer.crs.to_epsg() == 4326 and layer.kind.tolist() == ["new", "expanded"]
    back = pyogrio.read_dataframe(tmp_path / "survey.gpkg", layer="mines", fid_as_index=True)
    for _, a in layer.iterrows():  # mine_id is the polygon's fid in the layer mines
        assert back.loc[a.mine_id].geometry.equals_exact(a.geometry, 1e-9)
    csv = pd.read_csv(tmp_path / "alerts.csv")
    assert list(csv.columns) == alerts.COLUMNS and csv.mine_id.tolist() == [3, 5]
    assert csv.area_ha.tolist() == pytest.approx([4.0, 6.0], abs=0.01)
    assert found.metrics == {
        "zones": 1, "alerts": 2, "alerts_new": 1, "alerts_expanded": 1,
        "alerts_ha": pytest.approx(10.0, abs=0.02), "alerts_period": {P2: 2},
    }  # fmt: skip
    layers = json.loads(json.dumps(found.map))  # plain JSON for the map
    assert [f["properties"]["zone"] for f in layers["zones"]["features"]] == ["reach"]
    assert [f["properties"]["kind"] for f in layers["alerts"]["features"]] == ["new", "expanded"]


def test_for_survey_no_alert_writes_an_empty_layer(tmp_path):
    path = tmp_path / "zones.geojson"
    far = _box(50_000, 0, 51_000, 1000)
    gpd.GeoDataFrame({"name": ["far"]}, geometry=[far], crs="EPSG:4326").to_file(path)
    found = alerts.for_survey(SurveyParams(zones=str(path)), _mines(ROWS), [P1, P2], tmp_path / "alerts.csv")
    assert found is not None and found.alerts.empty and found.metrics["alerts"] == 0
    gpkg.write_gpkg(tmp_path / "survey.gpkg", {"alerts": found.alerts})
    assert gpd.read_file(tmp_path / "survey.gpkg", layer="alerts").empty
    assert pd.read_csv(tmp_path / "alerts.csv").columns.tolist() == alerts.COLUMNS


def test_map_report_lists_the_alerts(tmp_path):
    import numpy as np

    from sandmine.core.raster import grid_for_bounds

    path = tmp_path / "zones.geojson"
    gpd.GeoDataFrame({"name": ["reach <A>"]}, geometry=list(ZONE.values()), crs="EPSG:4326").to_file(path)
    found = alerts.for_survey(
        SurveyParams(zones=str(path), zone_margin_m=0.0), _mines(ROWS), [P1, P2], tmp_path / "a.csv"
    )
    assert found is not None
    b = _box(0, 0, 2000, 1000).bounds
    grid = grid_for_bounds(b)
    obs = [
        {"obs_id": q, "date": d, "grid": grid, "rgb": np.full((grid.height, grid.width, 3), 0.5),
         "q": np.zeros((grid.height, grid.width), np.uint8), "features": [], "area_ha": 0.0}
        for q, d in ((P1, "2025-11-15"), (P2, "2026-05-16"))
    ]  # fmt: skip
    html = tmp_path / "survey.html"
    webmap.map_report({"survey 44N": obs}, [], {}, True, html, alerts=found.map)
    text = html.read_text()
    assert "Alerts: 2 in 1 protected zone(s)" in text
    assert text.count("class='alert-link'") == 2 and "reach &lt;A&gt;" in text  # escaped
    webmap.map_report({"survey 44N": obs}, [], {}, True, html)
    assert "class='alert-link'" not in html.read_text() and "id='alerts'" not in html.read_text()
