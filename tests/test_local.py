"""Local sources: a SAFE-like Sentinel-2 L2A product (real band file names, JP2 at 10/20/60 m)
is stacked on the 10 m grid with the right band order and values; GeoTIFFs and GeoJSON labels
in other CRSs are brought onto the site's grid."""

import json

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, to_crs, write_cog
from sandmine.sources import local

TILE = "T44RQR"
MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
<n1:General_Info><Product_Image_Characteristics>
<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
</QUANTIFICATION_VALUES_LIST>
<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>
"""
# band -> (resolution, a DN per pixel: 1000 + 100 * band index + 7 * row)
RES = {"B2": 10, "B3": 10, "B4": 10, "B8": 10, "B5": 20, "B8A": 20, "B11": 20, "B12": 20, "B1": 60, "B9": 60}


def _jp2(path, res, dn):
    size = 60 * 10 // res  # a 600 m x 600 m tile
    profile = {"driver": "JP2OpenJPEG", "height": size, "width": size, "count": 1, "dtype": "uint16",
               "crs": CRS.from_epsg(32644), "transform": from_origin(600_000, 2_760_000, res, res),
               "QUALITY": 100, "REVERSIBLE": "YES"}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(dn(size)[None].astype(np.uint16))


@pytest.fixture
def safe(tmp_path):
    root = tmp_path / f"S2B_MSIL2A_20251115T050029_N0511_R119_{TILE}_20251115T071814.SAFE"
    img = root / "GRANULE" / f"L2A_{TILE}_A045123_20251115T050512" / "IMG_DATA"
    order = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    for band, res in RES.items():
        code = "B8A" if band == "B8A" else f"B{int(band[1:]):02d}"
        k = order.index(band)
        _jp2(img / f"R{res}m" / f"{TILE}_20251115T050029_{code}_{res}m.jp2", res,
             lambda n, k=k: np.full((n, n), 1000 + 100 * k) + 7 * np.arange(n)[:, None])  # fmt: skip
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
    (root / "MTD_MSIL2A.xml").write_text(MTD.format(offsets=offsets))
    return root


def test_safe_band_files_are_found_by_name(safe):
    files = local.safe_bands(safe)
    assert set(files) == set(RES)
    assert files["B8A"][0].name.endswith("_B8A_20m.jp2") and files["B2"][0].name.endswith("_B02_10m.jp2")


def test_stack_is_on_the_10m_grid_in_order_with_reflectance(safe):
    bands = ["B4", "B11", "B2", "B9"]
    data, grid = local.stack_safe(safe, bands)
    assert grid.res_m == 10 and (grid.height, grid.width) == (60, 60) and grid.crs.to_epsg() == 32644
    assert data.shape == (4, 60, 60)
    # B4 (index 3) at 10 m, row 0: DN 1300, minus the 1000 offset, / 10000 = 0.03
    assert data[0, 0, 0] == pytest.approx(0.03)
    assert data[0, 10, 0] == pytest.approx((1300 + 70 - 1000) / 10_000)
    # B11 (index 11) at 20 m: the 10 m pixels inside one 20 m pixel (away from edges) share its value ± bilinear
    assert data[1, 21, 30] == pytest.approx((2100 + 7 * 10.5 - 1000) / 10_000, abs=4e-4)
    assert data[2, 0, 0] == pytest.approx((1100 - 1000) / 10_000)  # B2 third, as asked
    assert np.nanmax(np.abs(data[3] - (1900 - 1000) / 10_000)) < 0.02  # B9 at 60 m, smooth in rows


def test_missing_band_names_band_and_folder(safe):
    for f in safe.glob("GRANULE/*/IMG_DATA/R20m/*_B11_20m.jp2"):
        f.unlink()
    with pytest.raises(SandmineError, match=r"no file for band\(s\) \['B11'\]") as exc:
        local.stack_safe(safe, ["B2", "B11"])
    assert safe.name in str(exc.value)


def test_geotiff_in_another_crs_is_resampled_onto_the_site_grid(tmp_path):
    src_grid = Grid(CRS.from_epsg(32645), from_origin(210_000, 2_760_000, 10, 10), 80, 80)
    data = np.full((2, 80, 80), 0.2, np.float32)
    write_cog(tmp_path / "mine.tif", data, src_grid, ["B3", "B4"])
    from pyproj import Transformer

    x, y = Transformer.from_crs(32645, 32644, always_xy=True).transform(210_400, 2_759_600)  # source centre
    target = Grid(CRS.from_epsg(32644), from_origin(round(x) - 100, round(y) + 100, 10, 10), 20, 20)
    out = local.read_geotiff(tmp_path / "mine.tif", ["B4"], target)
    assert out.shape == (1, 20, 20)
    assert np.isfinite(out).all() and np.allclose(out, 0.2)


def test_geojson_labels_in_any_crs(tmp_path):
    from shapely.geometry import box, mapping

    poly = box(600_100, 2_759_500, 600_300, 2_759_700)  # UTM 44N metres
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32644"}},
           "features": [{"type": "Feature", "properties": {"class": "mine", "confidence": "low"},
                         "geometry": mapping(poly)}]}  # fmt: skip
    (tmp_path / "a.geojson").write_text(json.dumps(doc))
    row = local.geojson_labels(tmp_path / "a.geojson", "son_a_2025-11-15")
    (ann,) = row.annotations
    assert ann.cls == "mine" and ann.confidence == "low" and not ann.in_pixels
    back = to_crs(ann.geometry, "EPSG:4326", "EPSG:32644")
    assert back.area == pytest.approx(poly.area, rel=1e-6)
    assert 81 < ann.geometry.centroid.x < 82  # lon/lat now


SQUARE = [[84.18, 24.90], [84.182, 24.90], [84.182, 24.902], [84.18, 24.902], [84.18, 24.90]]  # lon/lat


def _polygon(ring=SQUARE):
    return {"type": "Polygon", "coordinates": [ring]}


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def test_geojson_labels_without_crs_member_are_lonlat(tmp_path):
    """RFC 7946: no `crs` member means EPSG:4326 [lon, lat]."""
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": _polygon()}]}
    (ann,) = local.geojson_labels(_write(tmp_path / "o.geojson", doc), "o").annotations
    assert ann.cls == "mine" and ann.confidence == "high"
    assert ann.geometry.bounds == pytest.approx((84.18, 24.90, 84.182, 24.902))


@pytest.mark.parametrize(
    "name", ["EPSG:3857", "urn:ogc:def:crs:EPSG::3857", "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:EPSG::4326"]
)
def test_geojson_labels_crs_member_names_the_crs(tmp_path, name):
    from shapely.geometry import Polygon, mapping

    lonlat = Polygon(SQUARE)
    geom = to_crs(lonlat, "EPSG:4326", "EPSG:3857") if "3857" in name else lonlat
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": name}},
           "features": [{"type": "Feature", "properties": {"class": "mine"}, "geometry": mapping(geom)}]}  # fmt: skip
    (ann,) = local.geojson_labels(_write(tmp_path / "o.geojson", doc), "o").annotations
    assert ann.geometry.bounds == pytest.approx(lonlat.bounds, abs=1e-9)


def test_geojson_labels_unknown_crs_named(tmp_path):
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:99999"}}, "features": []}
    with pytest.raises(SandmineError, match="EPSG:99999") as err:
        local.geojson_labels(_write(tmp_path / "o.geojson", doc), "o")
    assert "o.geojson" in str(err.value)


@pytest.mark.parametrize("shape", ["collection", "collection_untyped", "list", "feature"])
def test_geojson_labels_features_without_type_and_other_layouts(tmp_path, shape):
    """Some tools write features without `"type": "Feature"`; they are polygons all the same."""
    untyped = {"geometry": _polygon(), "properties": {"class": "mine"}}
    doc = {
        "collection": {"type": "FeatureCollection", "features": [untyped, untyped]},
        "collection_untyped": {"features": [untyped, untyped]},
        "list": [untyped, {"type": "Feature", **untyped}],
        "feature": {"type": "Feature", **untyped},
    }[shape]
    row = local.geojson_labels(_write(tmp_path / "o.geojson", doc), "o")
    assert len(row.annotations) == (1 if shape == "feature" else 2) and not row.problems
    assert all(a.geometry.area > 0 for a in row.annotations)


def test_geojson_labels_class_and_confidence_in_any_case(tmp_path):
    feats = [
        {"type": "Feature", "properties": {"Class": "Mine", "Confidence": "High"}, "geometry": _polygon()},
        {"type": "Feature", "properties": {"CLASS": "mine", "confidence": "Low"}, "geometry": _polygon()},
        {"type": "Feature", "properties": {"class": "ignore"}, "geometry": _polygon()},
        {"type": "Feature", "properties": {"Label": "Water", "confidence": None}, "geometry": _polygon()},
        {"type": "Feature", "properties": None, "geometry": _polygon()},
    ]
    row = local.geojson_labels(_write(tmp_path / "o.geojson", {"type": "FeatureCollection", "features": feats}), "o")
    assert [(a.cls, a.confidence) for a in row.annotations] == [
        ("mine", "high"), ("mine", "low"), ("ignore", "high"), ("water", "high"), ("mine", "high")
    ]  # fmt: skip


def test_geojson_labels_unknown_confidence_named(tmp_path):
    feats = [{"type": "Feature", "properties": {"confidence": "high"}, "geometry": _polygon()},
             {"type": "Feature", "properties": {"confidence": "sure"}, "geometry": _polygon()}]  # fmt: skip
    with pytest.raises(SandmineError, match="'sure'") as err:
        local.geojson_labels(_write(tmp_path / "o.geojson", {"type": "FeatureCollection", "features": feats}), "o")
    assert "feature 1" in str(err.value) and "o.geojson" in str(err.value) and "high, medium, low" in str(err.value)


def test_geojson_labels_points_and_lines_skipped_collections_keep_polygons(tmp_path):
    geoms = [
        _polygon(),
        {"type": "Point", "coordinates": [84.18, 24.90]},
        {"type": "LineString", "coordinates": SQUARE[:3]},
        {"type": "MultiPoint", "coordinates": SQUARE[:2]},
        {"type": "GeometryCollection", "geometries": [_polygon(), {"type": "Point", "coordinates": [84.18, 24.9]}]},
        {"type": "MultiPolygon", "coordinates": [[SQUARE]]},
    ]
    feats = [{"type": "Feature", "properties": {}, "geometry": g} for g in geoms]
    row = local.geojson_labels(_write(tmp_path / "o.geojson", {"type": "FeatureCollection", "features": feats}), "o")
    assert len(row.annotations) == 3
    assert all(a.geometry.geom_type in ("Polygon", "MultiPolygon") and a.geometry.area > 0 for a in row.annotations)
    assert "feature 1 is a Point, not a polygon; skipped" in row.problems
    assert "feature 2 is a LineString, not a polygon; skipped" in row.problems
    assert "feature 3 is a MultiPoint, not a polygon; skipped" in row.problems
    assert any(p.startswith("feature 4 ") and "skipped" in p for p in row.problems)


def test_geojson_labels_overlapping_parts_become_one_valid_polygon(tmp_path):
    shifted = [[x + 0.001, y] for x, y in SQUARE]
    geom = {"type": "MultiPolygon", "coordinates": [[SQUARE], [shifted]]}  # overlapping: an invalid multi-polygon
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": geom}]}
    (ann,) = local.geojson_labels(_write(tmp_path / "o.geojson", doc), "o").annotations
    assert ann.geometry.is_valid and ann.geometry.area == pytest.approx(0.003 * 0.002)


def test_geojson_labels_self_intersection_repaired_without_losing_area(tmp_path):
    bowtie = [[84.0, 25.0], [84.01, 25.01], [84.01, 25.0], [84.0, 25.01], [84.0, 25.0]]
    feats = [{"type": "Feature", "properties": {}, "geometry": _polygon(bowtie)}]
    row = local.geojson_labels(_write(tmp_path / "o.geojson", {"type": "FeatureCollection", "features": feats}), "o")
    (ann,) = row.annotations
    assert ann.geometry.is_valid and ann.geometry.area == pytest.approx(0.01**2 / 2)  # both triangles
    assert row.problems == ["feature 0 was self-intersecting; repaired"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
         '{"type": "Polygon", "coordinates": [[84.1, 24.9]]}}]}', "feature 0"),
        ('{"type": "FeatureCollection", "features": [42]}', "feature 0"),
        ('{"type": "FeatureCollection", "features": {"a": 1}}', "features"),
        ('"just a string"', "FeatureCollection"),
    ],
)  # fmt: skip
def test_geojson_labels_unreadable_is_named(tmp_path, text, fragment):
    (tmp_path / "o.geojson").write_text(text)
    with pytest.raises(SandmineError, match=fragment) as err:
        local.geojson_labels(tmp_path / "o.geojson", "o")
    assert "o.geojson" in str(err.value) and "How to fix" in str(err.value)


def test_geojson_labels_written_with_a_bom(tmp_path):
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": _polygon()}]}
    (tmp_path / "o.geojson").write_text(json.dumps(doc), encoding="utf-8-sig")
    assert len(local.geojson_labels(tmp_path / "o.geojson", "o").annotations) == 1


def test_geojson_labels_no_features_is_no_mining(tmp_path):
    row = local.geojson_labels(_write(tmp_path / "o.geojson", {"type": "FeatureCollection", "features": []}), "o")
    assert row.status == "done" and not row.annotations and not row.problems


def test_local_source_and_geojson_labels_through_the_stages(tmp_path, tiny_inputs):
    from pathlib import Path

    from shapely.geometry import box, mapping

    from sandmine.core.config import load_params
    from sandmine.core.raster import grid_for_bounds, read_image, read_mask
    from sandmine.core.sites import read_manifest, read_observations, read_sites
    from sandmine.steps import annotate_pull, export

    sites_path, obs_path = tiny_inputs
    sites = read_sites(sites_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    p = load_params(Path(__file__).parents[1] / "params.yaml")
    for o in read_observations(obs_path, sites):
        g = grid_for_bounds(sites[o.site_id].geometry.bounds)
        data = np.full((len(p.bands), g.height, g.width), 0.1, np.float32)
        data[[p.bands.index("VV"), p.bands.index("VH")]] = -12.0
        write_cog(mine / f"{o.obs_id}.tif", data, g, p.bands)
    # one observation labelled in web mercator, as a QGIS user might save it
    g = grid_for_bounds(sites["son_a"].geometry.bounds)
    left, bottom, right, top = g.bounds
    poly = to_crs(box(left + 200, bottom + 200, left + 600, bottom + 500), g.crs, "EPSG:3857")
    labels = tmp_path / "labels"
    labels.mkdir()
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
           "features": [{"type": "Feature", "properties": {"class": "mine"}, "geometry": mapping(poly)}]}  # fmt: skip
    (labels / "son_a_2025-11-15.geojson").write_text(json.dumps(doc))
    p.source.kind, p.source.images_dir = "local", str(mine)
    p.labels.source, p.labels.folder = "geojson", str(labels)
    export.run(p, sites_path, obs_path, tmp_path / "images", tmp_path / "source")
    manifest = read_manifest(tmp_path / "images" / "manifest.csv")
    assert len(manifest) == 9 and {r["source"] for r in manifest} == {"local"}
    img = read_image(tmp_path / "images" / "son_a_2025-11-15.tif", ["B2", "VV"])
    assert img.tags["source"] == "local-geotiff" and img.data[0, 3, 3] == pytest.approx(0.1)
    assert img.data[1, 3, 3] == pytest.approx(-12.0)
    annotate_pull.run(p, tmp_path / "source", tmp_path / "images", tmp_path / "labels_out", tmp_path / "m.json")
    mask = read_mask(tmp_path / "labels_out" / "son_a_2025-11-15.tif")
    assert mask.sum() == pytest.approx(40 * 30, rel=0.05)  # 400 m x 300 m at 10 m
    index = (tmp_path / "labels_out" / "index.csv").read_text()
    assert "son_a_2025-11-15,done" in index and "betwa_a_2025-11-15,missing" in index


def test_local_source_missing_image_is_named(tmp_path, tiny_inputs):
    from pathlib import Path

    from sandmine.core.config import load_params
    from sandmine.steps import export

    p = load_params(Path(__file__).parents[1] / "params.yaml")
    p.source.kind, p.source.images_dir = "local", str(tmp_path)
    with pytest.raises(SandmineError, match="no image for observation 'betwa_a_2025-11-15'"):
        export.run(p, *tiny_inputs, tmp_path / "images", tmp_path / "source")


def test_digital_numbers_geotiff_resampled_as_reflectance_with_its_offset_tag(tmp_path):
    """A uint16 L2A file of processing baseline ≥ 04.00 that says so (BOA_ADD_OFFSET) in another UTM zone."""
    from pyproj import Transformer

    src_grid = Grid(CRS.from_epsg(32645), from_origin(210_000, 2_760_000, 10, 10), 80, 80)
    write_cog(tmp_path / "dn.tif", np.full((2, 80, 80), 3000, np.uint16), src_grid, ["B3", "B4"],
              {"BOA_ADD_OFFSET": "-1000"})  # fmt: skip
    x, y = Transformer.from_crs(32645, 32644, always_xy=True).transform(210_400, 2_759_600)
    target = Grid(CRS.from_epsg(32644), from_origin(round(x) - 100, round(y) + 100, 10, 10), 20, 20)
    out = local.read_geotiff(tmp_path / "dn.tif", ["B4"], target)
    assert np.isfinite(out).all() and np.allclose(out, (3000 - 1000) / 10_000)


def test_local_export_stops_when_a_site_is_far_from_its_image(tmp_path, tiny_inputs):
    from pathlib import Path

    from sandmine.core.config import load_params
    from sandmine.core.raster import grid_for_bounds
    from sandmine.core.sites import read_observations, read_sites
    from sandmine.steps import export

    sites_path, obs_path = tiny_inputs
    sites = read_sites(sites_path)
    p = load_params(Path(__file__).parents[1] / "params.yaml")
    p.bands = ["B2", "B3", "B4"]
    far = grid_for_bounds(sites["krishna_a"].geometry.bounds)
    for o in read_observations(obs_path, sites):  # the son_a images show the Krishna, 1000 km away
        g = far if o.site_id == "son_a" else grid_for_bounds(sites[o.site_id].geometry.bounds)
        write_cog(tmp_path / f"{o.obs_id}.tif", np.full((3, g.height, g.width), 0.1, np.float32), g, p.bands)
    p.source.kind, p.source.images_dir = "local", str(tmp_path)
    with pytest.raises(SandmineError, match="no valid pixel") as err:
        export.run(p, sites_path, obs_path, tmp_path / "images", tmp_path / "source")
    message = str(err.value)
    assert "'son_a_2025-11-15' (site 'son_a'" in message and "'son_a_2026-11-08'" in message
    assert "betwa_a" not in message and "[lon, lat]" in message and "sites.geojson" in message
