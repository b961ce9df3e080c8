"""The one reader of a user's vector files (rivers, regions): layers, CRS, features without geometry, extents."""

from __future__ import annotations

import logging

import geopandas as gpd
import pytest
from shapely.geometry import LineString, box

from sandmine.core.errors import SandmineError
from sandmine.core.vectors import extent, read_vectors

SON = LineString([(82.5, 24.4), (82.6, 24.42)])


def _gpkg(path, layers: dict[str, gpd.GeoDataFrame]):
    for name, frame in layers.items():
        frame.to_file(path, layer=name, driver="GPKG")
    return path


def test_read_vectors_reprojects_to_lon_lat(tmp_path):
    path = tmp_path / "rivers.gpkg"
    gpd.GeoDataFrame({"river": ["Son"]}, geometry=[SON], crs="EPSG:4326").to_crs("EPSG:32644").to_file(path)
    frame = read_vectors(path, "rivers", "survey.rivers")
    assert frame.crs.to_epsg() == 4326 and frame.geometry.iloc[0].distance(SON) < 1e-6


def test_read_vectors_refuses_several_layers_and_lists_them(tmp_path):
    rivers = gpd.GeoDataFrame({"river": ["Son", "Ken"]}, geometry=[SON, SON], crs="EPSG:4326")
    basins = gpd.GeoDataFrame({"basin": ["Ganga"]}, geometry=[box(80, 24, 83, 26)], crs="EPSG:4326")
    path = _gpkg(tmp_path / "two.gpkg", {"rivers": rivers, "basins": basins})
    with pytest.raises(SandmineError) as err:
        read_vectors(path, "rivers", "survey.rivers", "", "survey.rivers_layer")
    text = str(err.value)
    assert "holds 2 layers" in text and "'rivers': 2 LineString" in text and "'basins': 1 Polygon" in text
    assert "set 'survey.rivers_layer'" in text
    with pytest.raises(SandmineError, match=r"no layer 'river'.*'rivers': 2"):
        read_vectors(path, "rivers", "survey.rivers", "river", "survey.rivers_layer")
    assert list(read_vectors(path, "rivers", "survey.rivers", "basins", "survey.rivers_layer").basin) == ["Ganga"]


def test_read_vectors_does_not_count_tables_without_geometry(tmp_path):
    import pandas as pd
    import pyogrio

    path = tmp_path / "rivers.gpkg"
    gpd.GeoDataFrame({"river": ["Son"]}, geometry=[SON], crs="EPSG:4326").to_file(path, layer="rivers")
    pyogrio.write_dataframe(pd.DataFrame({"styleName": ["rivers"]}), path, layer="layer_styles")  # as QGIS does
    assert list(read_vectors(path, "rivers", "survey.rivers", "", "survey.rivers_layer").river) == ["Son"]


def test_read_vectors_without_a_layer_key_says_to_save_the_layer_alone(tmp_path):
    frame = gpd.GeoDataFrame(geometry=[box(80, 24, 83, 26)], crs="EPSG:4326")
    path = _gpkg(tmp_path / "region.gpkg", {"a": frame, "b": frame})
    with pytest.raises(SandmineError, match="save the layer that holds the region as a file of its own"):
        read_vectors(path, "region", "survey.region")


def test_read_vectors_names_features_without_geometry(tmp_path, caplog):
    path = tmp_path / "rivers.geojson"
    path.write_text(
        '{"type": "FeatureCollection", "features": ['
        '{"type": "Feature", "properties": {"river": "Son"}, "geometry": {"type": "LineString", '
        '"coordinates": [[82.5, 24.4], [82.6, 24.42]]}},'
        '{"type": "Feature", "properties": {"river": "Ken"}, "geometry": null}]}'
    )
    with caplog.at_level(logging.WARNING):
        frame = read_vectors(path, "rivers", "survey.rivers")
    assert list(frame.river) == ["Son"] and "1 of 2 feature(s) have no geometry" in caplog.text
    assert "(features 2, counting from 1)" in caplog.text


def test_read_vectors_missing_unreadable_and_crs_less_files(tmp_path):
    with pytest.raises(SandmineError, match="(?s)rivers file not found.*How to fix: fix 'source.rivers_file'"):
        read_vectors(tmp_path / "none.gpkg", "rivers", "source.rivers_file")
    (tmp_path / "bad.gpkg").write_text("not a geopackage")
    with pytest.raises(SandmineError, match="not a vector file"):
        read_vectors(tmp_path / "bad.gpkg", "rivers", "survey.rivers")
    gpd.GeoDataFrame({"river": ["Son"]}, geometry=[SON]).to_file(tmp_path / "nocrs.shp")
    with pytest.raises(SandmineError, match="rivers file has no CRS"):
        read_vectors(tmp_path / "nocrs.shp", "rivers", "survey.rivers")


def test_read_vectors_refuses_a_feature_across_the_antimeridian(tmp_path):
    path = tmp_path / "rivers.geojson"
    across = LineString([(179.9, -16.8), (-179.9, -16.7)])  # Fiji: 0.2° long, read as 359.8°
    gpd.GeoDataFrame({"river": ["Son", "Labasa"]}, geometry=[SON, across], crs="EPSG:4326").to_file(path)
    with pytest.raises(SandmineError, match=r"feature\(s\) 2 \(counting from 1\) span more than 180°.*antimeridian"):
        read_vectors(path, "rivers", "survey.rivers")


def test_extent_counts_lines_in_km_and_polygons_in_km2():
    km, km2 = extent(LineString([(0, 0), (1, 0)]))  # one degree along the equator
    assert km == pytest.approx(111.32, abs=0.01) and km2 == 0
    km, km2 = extent(box(0, 0, 0.1, 0.1).union(LineString([(5, 0), (5, 1)])))
    assert km == pytest.approx(110.57, abs=0.01) and km2 == pytest.approx(123.09, abs=0.01)
