"""Bad input, one row each: a clear error (what, which file or field, how to fix) and nothing lost.

`python tests/test_bad_input.py` prints the table of rows and the messages they produce.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import Polygon

from sandmine.core.config import LabelsParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, read_image, write_cog

BANDS = ["B2", "B3", "B4", "B8", "B11", "B12", "VV", "VH"]
GRID = Grid(CRS.from_epsg(32644), Affine(10, 0, 500000, 0, -10, 2750000), 96, 96)


def _image(path: Path, data: np.ndarray | None = None, bands: list[str] = BANDS) -> Path:
    rng = np.random.default_rng(0)
    data = rng.uniform(0.01, 0.3, (len(bands), 96, 96)).astype(np.float32) if data is None else data
    write_cog(path, data, GRID, bands)
    return path


def _checkpoint(path: Path, bands: list[str]) -> Path:
    import torch

    from sandmine import models

    torch.manual_seed(0)
    model = models.build("resnet18", "linear", bands)
    meta = {"encoder": "resnet18", "decoder": "linear", "bands": bands, "mean": [0.0] * len(bands),
            "std": [1.0] * len(bands), "window_px": 64, "train": {}}  # fmt: skip
    torch.save(models.save_checkpoint(model, meta), path)
    return path


# Each case: (row, function(tmp) -> the message it produced, fragments the message must hold).
# A function raises nothing itself: it returns the SandmineError's text, or the problem reported.


def truncated_geotiff(tmp: Path) -> str:
    data = _image(tmp / "scene.tif").read_bytes()
    (tmp / "scene.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(SandmineError) as err:
        read_image(tmp / "scene.tif", BANDS)
    return str(err.value)


def corrupt_geotiff(tmp: Path) -> str:
    (tmp / "scene.tif").write_bytes(b"II*\x00" + b"garbage" * 200)
    with pytest.raises(SandmineError) as err:
        read_image(tmp / "scene.tif", BANDS)
    return str(err.value)


def wrong_band_count(tmp: Path) -> str:
    _image(tmp / "scene.tif", bands=BANDS[:6])  # an S2-only export for a model that wants VV, VH
    with pytest.raises(SandmineError) as err:
        read_image(tmp / "scene.tif", BANDS)
    return str(err.value)


def wrong_band_order(tmp: Path) -> str:
    """Bands are read by name: an image with its bands in another order gives the same input."""
    data = np.random.default_rng(1).uniform(0.01, 0.3, (len(BANDS), 96, 96)).astype(np.float32)
    _image(tmp / "a.tif", data)
    _image(tmp / "b.tif", data[::-1].copy(), BANDS[::-1])
    np.testing.assert_array_equal(read_image(tmp / "a.tif", BANDS).data, read_image(tmp / "b.tif", BANDS).data)
    return "not an error: bands are matched by their names (band descriptions), so the order does not matter"


def all_nodata_image(tmp: Path) -> str:
    from sandmine.dataset import CogScene

    for d in ("images", "labels", "aoi"):
        (tmp / d).mkdir()
    _image(tmp / "images" / "o.tif", np.full((len(BANDS), 96, 96), np.nan, np.float32))
    write_cog(tmp / "labels" / "o.tif", np.zeros((1, 96, 96), np.uint8), GRID, ["label"], nodata=None)
    write_cog(tmp / "aoi" / "o.tif", np.ones((1, 96, 96), np.uint8), GRID, ["aoi"], nodata=None)
    with pytest.raises(SandmineError) as err:
        zero, one = np.zeros(len(BANDS), np.float32), np.ones(len(BANDS), np.float32)
        CogScene("o", tmp / "images/o.tif", tmp / "labels/o.tif", tmp / "aoi/o.tif", BANDS, BANDS, [], zero, one)
    return str(err.value)


def image_without_crs(tmp: Path) -> str:
    profile = {"driver": "GTiff", "width": 32, "height": 32, "count": 2, "dtype": "float32"}
    with rasterio.open(tmp / "scene.tif", "w", **profile) as dst:
        dst.write(np.zeros((2, 32, 32), np.float32))
        dst.descriptions = ("B2", "B3")
    with pytest.raises(SandmineError) as err:
        read_image(tmp / "scene.tif", ["B2"])
    return str(err.value)


def labels_outside_image(tmp: Path) -> str:
    from sandmine.core.schema import Annotation, LabelRow, rasterize_row

    far = Polygon([(84.0, 25.0), (84.01, 25.0), (84.01, 25.01), (84.0, 25.01)])  # lon/lat, km away
    near = Polygon([(0, 0), (5, 0), (5, 5), (0, 5)])  # pixels: one polygon still on the image
    row = LabelRow("o", "done", [Annotation("mine", far, "high", False), Annotation("mine", near, "high", True)])
    mask, feats = rasterize_row(row, GRID, np.ones((96, 96), bool), LabelsParams(mine_classes=["mine"]))
    assert (mask == 1).sum() == 25 and len(feats) == 1
    return "; ".join(row.problems)


def self_intersecting_polygon(tmp: Path) -> str:
    from sandmine.sources.local import geojson_labels

    bowtie = [[84.0, 25.0], [84.01, 25.01], [84.01, 25.0], [84.0, 25.01], [84.0, 25.0]]
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:4326"}},
           "features": [{"type": "Feature", "properties": {"class": "mine"},
                         "geometry": {"type": "Polygon", "coordinates": [bowtie]}}]}  # fmt: skip
    (tmp / "o.geojson").write_text(json.dumps(doc))
    row = geojson_labels(tmp / "o.geojson", "o")
    assert row.annotations[0].geometry.is_valid and row.annotations[0].geometry.area > 0
    return "; ".join(row.problems)


def empty_label_file(tmp: Path) -> str:
    from sandmine.sources.local import geojson_labels

    (tmp / "o.geojson").write_text("")
    with pytest.raises(SandmineError) as err:
        geojson_labels(tmp / "o.geojson", "o")
    return str(err.value)


def site_across_utm_zones(tmp: Path) -> str:
    from sandmine.sources.base import check_one_zone

    with pytest.raises(SandmineError) as err:
        check_one_zone("gandak_across", (83.98, 27.0, 84.02, 27.03))
    return str(err.value)


def nans_in_imagery(tmp: Path) -> str:
    """NaN (nodata) pixels get probability 0; the rest of the scene is predicted as usual."""
    from sandmine import models
    from sandmine.prediction import Stitch, predict_file

    data = np.random.default_rng(2).uniform(0.01, 0.3, (len(BANDS), 96, 96)).astype(np.float32)
    data[:, 10:30, 10:30] = np.nan
    _image(tmp / "scene.tif", data)
    model, ckpt = models.load_checkpoint(str(_checkpoint(tmp / "m.pt", BANDS)))
    predict_file(model, ckpt, tmp / "scene.tif", tmp / "p.tif", Stitch(64, 48, 8, 2, "gaussian"))
    with rasterio.open(tmp / "p.tif") as src:
        prob = src.read(1)
    assert (prob[10:30, 10:30] == 0).all() and prob[40:, 40:].any()
    return "not an error: nodata pixels (NaN in any model band) get probability 0, the others are predicted"


def params_typo(tmp: Path) -> str:
    from sandmine.core.config import load_params

    (tmp / "params.yaml").write_text("aoi:\n  bufer_m: 500\n")
    with pytest.raises(SandmineError) as err:
        load_params(tmp / "params.yaml")
    return str(err.value)


def unknown_encoder(tmp: Path) -> str:
    from sandmine import models

    with pytest.raises(SandmineError) as err:
        models.check("resnet19", "unet")
    return str(err.value)


def missing_checkpoint(tmp: Path) -> str:
    from sandmine import models

    with pytest.raises(SandmineError) as err:
        models.load_checkpoint(str(tmp / "models" / "model.pt"))
    return str(err.value)


def checkpoint_for_other_bands(tmp: Path) -> str:
    from sandmine import models
    from sandmine.prediction import Stitch, predict_file

    _image(tmp / "scene.tif")
    model, ckpt = models.load_checkpoint(str(_checkpoint(tmp / "m.pt", [*BANDS, "B5"])))
    with pytest.raises(SandmineError) as err:
        predict_file(model, ckpt, tmp / "scene.tif", tmp / "p.tif", Stitch(64, 48, 8, 2, "gaussian"))
    assert not (tmp / "p.tif").exists()  # nothing half-written
    return str(err.value)


def obs_id_escaping_its_folder(tmp: Path) -> str:
    from sandmine.core.sites import read_observations, read_sites

    site = {"type": "Feature", "properties": {"site_id": "son_a", "river": "Son", "basin": "Ganga"},
            "geometry": {"type": "Polygon", "coordinates": [[[84.0, 25.0], [84.02, 25.0], [84.02, 25.02],
                                                             [84.0, 25.02], [84.0, 25.0]]]}}  # fmt: skip
    (tmp / "sites.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [site]}))
    (tmp / "observations.csv").write_text(
        "obs_id,site_id,date,role\n../../etc/son_a_2026-01-01,son_a,2026-01-01,infer\n"
    )
    with pytest.raises(SandmineError) as err:
        read_observations(tmp / "observations.csv", read_sites(tmp / "sites.geojson"))
    return str(err.value)


S2 = BANDS[:6]
SITE_LON_LAT = (84.18, 24.90)  # the Son, in UTM 44N


def _raster_log(run: Callable[[], object]) -> str:
    """What `sandmine.core.raster` logged while `run()` ran (the units it decided on)."""
    import logging

    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("sandmine.core.raster")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return " ".join(lines)


def _local_export(tmp: Path, image: np.ndarray, swap_lon_lat: bool = False) -> str:
    """Run the export stage (`source.kind: local`) on one site whose image is `image` (S2 bands, site grid)."""
    from sandmine.core.config import load_params
    from sandmine.core.raster import grid_for_bounds
    from sandmine.steps import export

    lon, lat = SITE_LON_LAT
    ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]
    ring = [xy[::-1] for xy in ring] if swap_lon_lat else ring
    site = {"type": "Feature", "properties": {"site_id": "son_a", "river": "Son", "basin": "Ganga"},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}  # fmt: skip
    (tmp / "sites.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [site]}))
    (tmp / "observations.csv").write_text("obs_id,site_id,date,role\nson_a_2025-11-15,son_a,2025-11-15,labelled\n")
    (tmp / "mine").mkdir()
    write_cog(tmp / "mine" / "son_a_2025-11-15.tif", image, grid_for_bounds((lon, lat, lon + 0.01, lat + 0.01)), S2)
    p = load_params(Path(__file__).parents[1] / "params.yaml")
    p.source.kind, p.source.images_dir, p.source.rivers_file, p.bands = "local", str(tmp / "mine"), "", S2
    return _raster_log(lambda: export.run(p, tmp / "sites.geojson", tmp / "observations.csv", tmp / "img", tmp / "src"))


def digital_numbers_local_export(tmp: Path) -> str:
    """uint16 digital numbers (as Earth Engine's S2_SR_HARMONIZED delivers them) are stored as reflectance."""
    from sandmine.core.raster import grid_for_bounds

    lon, lat = SITE_LON_LAT
    g = grid_for_bounds((lon, lat, lon + 0.01, lat + 0.01))
    dn = np.random.default_rng(3).integers(100, 5000, (len(S2), g.height, g.width)).astype(np.uint16)
    logged = _local_export(tmp, dn)
    stored = read_image(tmp / "img" / "son_a_2025-11-15.tif", S2).data
    assert np.abs(stored - dn / 10_000).max() <= 1e-4  # within the int16 quantum, not saturated
    return f"not an error: {logged}"


def digital_numbers_predict(tmp: Path) -> str:
    """`sandmine predict` on digital numbers gives the probabilities of the same scene in reflectance."""
    from sandmine import models
    from sandmine.prediction import Stitch, predict_file

    dn = np.random.default_rng(4).integers(100, 3000, (len(S2), 96, 96)).astype(np.uint16)
    _image(tmp / "reflectance.tif", dn.astype(np.float32) / np.float32(10_000), S2)
    _image(tmp / "dn.tif", dn, S2)
    model, ckpt = models.load_checkpoint(str(_checkpoint(tmp / "m.pt", S2)))
    stitch = Stitch(64, 48, 8, 2, "gaussian")
    predict_file(model, ckpt, tmp / "reflectance.tif", tmp / "p_reflectance.tif", stitch)
    logged = _raster_log(lambda: predict_file(model, ckpt, tmp / "dn.tif", tmp / "p_dn.tif", stitch))
    with rasterio.open(tmp / "p_reflectance.tif") as a, rasterio.open(tmp / "p_dn.tif") as b:
        expected, got = a.read(1), b.read(1)
    assert np.ptp(expected) > 0 and np.array_equal(got, expected)
    return f"not an error: {logged}"


def eight_bit_image(tmp: Path) -> str:
    rgb = np.random.default_rng(5).integers(0, 256, (3, 96, 96)).astype(np.uint8)  # a true-colour rendering
    _image(tmp / "scene.tif", rgb, ["B4", "B3", "B2"])
    with pytest.raises(SandmineError) as err:
        read_image(tmp / "scene.tif", ["B2", "B3", "B4"])
    return str(err.value)


def site_lon_lat_swapped(tmp: Path) -> str:
    from sandmine.core.raster import grid_for_bounds

    lon, lat = SITE_LON_LAT
    g = grid_for_bounds((lon, lat, lon + 0.01, lat + 0.01))
    with pytest.raises(SandmineError) as err:
        _local_export(tmp, np.full((len(S2), g.height, g.width), 0.1, np.float32), swap_lon_lat=True)
    return str(err.value)


def _label_file(tmp: Path, features: list, crs: str | None = None) -> Path:
    """A label file as QGIS / ogr2ogr write it (a `crs` member when not in EPSG:4326)."""
    doc: dict = {"type": "FeatureCollection", "name": "o", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    (tmp / "o.geojson").write_text(json.dumps(doc, indent=1))
    return tmp / "o.geojson"


def _on_grid(crs: str) -> dict:
    """A 200 m x 200 m square on GRID (pixel rows and columns 10-29), as a GeoJSON geometry in `crs`."""
    from shapely.geometry import box, mapping

    from sandmine.core.raster import to_crs

    return mapping(to_crs(box(500_100, 2_749_700, 500_300, 2_749_900), GRID.crs, crs))


def _label_mask(tmp: Path, params: LabelsParams | None = None) -> tuple[np.ndarray, list[str]]:
    from sandmine.core.schema import rasterize_row
    from sandmine.sources.local import geojson_labels

    row = geojson_labels(tmp / "o.geojson", "o")
    mask, _ = rasterize_row(row, GRID, np.ones((96, 96), bool), params or LabelsParams())
    return mask, row.problems


def geojson_features_without_type(tmp: Path) -> str:
    """Some tools export features as {geometry, properties} without "type": "Feature"."""
    _label_file(tmp, [{"geometry": _on_grid("EPSG:4326"), "properties": {"class": "mine"}}])
    mask, problems = _label_mask(tmp)
    assert (mask == 1).sum() == 400 and not problems
    return 'not an error: features without "type": "Feature" are read as features (400 mine pixels)'


def geojson_unreadable_geometry(tmp: Path) -> str:
    from sandmine.sources.local import geojson_labels

    bad = {"type": "Polygon", "coordinates": [[84.0, 25.0]]}  # a ring of one point
    _label_file(tmp, [{"type": "Feature", "properties": {}, "geometry": _on_grid("EPSG:4326")},
                      {"type": "Feature", "properties": {}, "geometry": bad}])  # fmt: skip
    with pytest.raises(SandmineError) as err:
        geojson_labels(tmp / "o.geojson", "o")
    return str(err.value)


def geojson_in_web_mercator(tmp: Path) -> str:
    """QGIS "Save Features As" in EPSG:3857 writes a legacy `crs` member; it is honoured."""
    _label_file(tmp, [{"type": "Feature", "properties": {"class": "mine"}, "geometry": _on_grid("EPSG:3857")}],
                "urn:ogc:def:crs:EPSG::3857")  # fmt: skip
    mask, _ = _label_mask(tmp)
    assert (mask[10:30, 10:30] == 1).all() and (mask == 1).sum() == 400
    return "not an error: the 'crs' member (urn:ogc:def:crs:EPSG::3857) is read and the polygons reprojected"


def geojson_metres_without_crs(tmp: Path) -> str:
    """The same metres without the `crs` member read as lon/lat: the stage stops, naming the file."""
    from sandmine.labels import pull
    from sandmine.sources.local import geojson_labels

    (tmp / "images").mkdir()
    _image(tmp / "images" / "son_a_2025-11-15.tif")
    folder = tmp / "labels"
    folder.mkdir()
    _label_file(folder, [{"type": "Feature", "properties": {"class": "mine"}, "geometry": _on_grid("EPSG:3857")}])
    (folder / "o.geojson").rename(folder / "son_a_2025-11-15.geojson")
    row = geojson_labels(folder / "son_a_2025-11-15.geojson", "son_a_2025-11-15")
    manifest = [{"obs_id": "son_a_2025-11-15", "role": "labelled", "file": "son_a_2025-11-15.tif"}]
    with pytest.raises(SandmineError) as err:
        pull([row], manifest, tmp / "images", tmp / "out", LabelsParams(source="geojson", folder=str(folder)))
    return str(err.value)


def geojson_capitalised_keys(tmp: Path) -> str:
    """The prior system's exports: `Class: Mine`, `Confidence: High/Low`; `class: ignore` is not a mine."""
    from sandmine.sources.local import geojson_labels

    _label_file(tmp, [
        {"type": "Feature", "properties": {"Class": "Mine", "Confidence": "Low"}, "geometry": _on_grid("EPSG:4326")},
        {"type": "Feature", "properties": {"Class": "Ignore", "Confidence": "High"}, "geometry": _on_grid("EPSG:4326")},
    ])  # fmt: skip
    row = geojson_labels(tmp / "o.geojson", "o")
    assert [(a.cls, a.confidence) for a in row.annotations] == [("mine", "low"), ("ignore", "high")]
    mask, _ = _label_mask(tmp)
    assert (mask == 1).sum() == 0 and (mask == 255).sum() == 400  # the ignore polygon is drawn over the mine
    return "not an error: property keys and values are read in any case (Class: Mine -> mine, Confidence: Low -> low)"


def geojson_unknown_confidence(tmp: Path) -> str:
    from sandmine.sources.local import geojson_labels

    _label_file(tmp, [{"type": "Feature", "properties": {"class": "mine", "confidence": "certain"},
                       "geometry": _on_grid("EPSG:4326")}])  # fmt: skip
    with pytest.raises(SandmineError) as err:
        geojson_labels(tmp / "o.geojson", "o")
    return str(err.value)


def geojson_line_label(tmp: Path) -> str:
    _label_file(tmp, [
        {"type": "Feature", "properties": {"class": "mine"}, "geometry": _on_grid("EPSG:4326")},
        {"type": "Feature", "properties": {"class": "mine"},
         "geometry": {"type": "LineString", "coordinates": [[80.98, 24.85], [80.99, 24.86]]}},
    ])  # fmt: skip
    mask, problems = _label_mask(tmp)
    assert (mask == 1).sum() == 400  # the line burns no pixel
    return "; ".join(problems)


def _one_site(tmp: Path) -> dict:
    from sandmine.core.sites import read_sites

    site = {"type": "Feature", "properties": {"site_id": "son_a", "river": "Son", "basin": "Ganga"},
            "geometry": {"type": "Polygon", "coordinates": [[[84.0, 25.0], [84.02, 25.0], [84.02, 25.02],
                                                             [84.0, 25.02], [84.0, 25.0]]]}}  # fmt: skip
    (tmp / "sites.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [site]}))
    return read_sites(tmp / "sites.geojson")


def observations_csv_with_bom(tmp: Path) -> str:
    """Excel's "CSV UTF-8" starts the file with a byte-order mark."""
    from sandmine.core.sites import read_observations

    text = "obs_id,site_id,date,role\r\nson_a_2026-01-01,son_a,2026-01-01,infer\r\n"
    (tmp / "observations.csv").write_text(text, encoding="utf-8-sig", newline="")
    assert [o.obs_id for o in read_observations(tmp / "observations.csv", _one_site(tmp))] == ["son_a_2026-01-01"]
    return "not an error: a UTF-8 byte-order mark (Excel's 'CSV UTF-8') is accepted"


def observations_csv_semicolons(tmp: Path) -> str:
    """Excel in many locales saves "CSV" with ';' between columns."""
    from sandmine.core.sites import read_observations

    text = "obs_id;site_id;date;role\r\nson_a_2026-01-01;son_a;2026-01-01;infer\r\n"
    (tmp / "observations.csv").write_text(text, encoding="utf-8-sig", newline="")
    with pytest.raises(SandmineError) as err:
        read_observations(tmp / "observations.csv", _one_site(tmp))
    return str(err.value)


CASES: list[tuple[str, Callable[[Path], str], list[str]]] = [
    ("truncated GeoTIFF", truncated_geotiff, ["scene.tif", "cannot read pixels", "re-export"]),
    ("corrupt GeoTIFF", corrupt_geotiff, ["scene.tif", "not a readable raster", "re-export"]),
    ("wrong band count", wrong_band_count, ["scene.tif", "['VV', 'VH'] not in image", "model.bands"]),
    ("wrong band order", wrong_band_order, ["by their names"]),
    ("all-nodata image", all_nodata_image, ["o.tif", "no valid pixel", "re-export"]),
    ("image without a CRS", image_without_crs, ["scene.tif", "no CRS", "gdal_edit"]),
    ("labels outside the image", labels_outside_image, ["object 0 (mine) lies outside the image; skipped"]),
    ("self-intersecting polygon", self_intersecting_polygon, ["feature 0 was self-intersecting; repaired"]),
    ("empty label file", empty_label_file, ["o.geojson", "label file is empty", "FeatureCollection"]),
    ("site crossing UTM zones", site_across_utm_zones, ["gandak_across", "spans two UTM zones", "split"]),
    ("NaNs in imagery", nans_in_imagery, ["probability 0"]),
    ("params typo", params_typo, ["params.yaml", "unknown key 'aoi.bufer_m'", "buffer_m"]),
    ("encoder that does not exist", unknown_encoder, ["model.encoder", "unknown encoder 'resnet19'", "resnet18"]),
    ("missing checkpoint", missing_checkpoint, ["model.pt", "checkpoint not found", "run the train stage"]),
    ("checkpoint trained on other bands", checkpoint_for_other_bands, ["scene.tif", "lacks ['B5']", "trained on"]),
    ("obs_id escaping its folder", obs_id_escaping_its_folder, ["observations.csv", "not a safe identifier", "'..'"]),
    (
        "Sentinel-2 digital numbers (uint16) through the local export",
        digital_numbers_local_export,
        ["son_a_2025-11-15.tif", "digital numbers", "DN / 10000"],
    ),
    (
        "Sentinel-2 digital numbers (uint16) through sandmine predict",
        digital_numbers_predict,
        ["dn.tif", "digital numbers", "DN / 10000"],
    ),
    ("8-bit (0–255) rendering instead of reflectance", eight_bit_image, ["scene.tif", "8-bit", "uint8", "reflectance"]),
    (
        "site with lon/lat swapped",
        site_lon_lat_swapped,
        ["son_a_2025-11-15", "site 'son_a'", "no valid pixel", "[lon, lat]", "source.images_dir"],
    ),
    ('GeoJSON features without "type"', geojson_features_without_type, ["read as features"]),
    (
        "GeoJSON feature with an unreadable geometry",
        geojson_unreadable_geometry,
        ["o.geojson", "feature 1", "not valid GeoJSON", "Save Features As"],
    ),
    ("GeoJSON in EPSG:3857 with a 'crs' member (QGIS)", geojson_in_web_mercator, ["'crs' member", "reprojected"]),
    (
        "GeoJSON in metres without a 'crs' member",
        geojson_metres_without_crs,
        ["son_a_2025-11-15", "labels.source: geojson", "outside the image", "[lon, lat]", "'crs' member"],
    ),
    ("GeoJSON with capitalised keys (Class: Mine)", geojson_capitalised_keys, ["any case"]),
    (
        "GeoJSON with an unknown confidence",
        geojson_unknown_confidence,
        ["o.geojson", "feature 0", "'certain'", "high, medium, low"],
    ),
    ("GeoJSON LineString label", geojson_line_label, ["feature 1 is a LineString, not a polygon; skipped"]),
    ("observations.csv saved by Excel with a BOM", observations_csv_with_bom, ["byte-order mark"]),
    (
        "';'-separated observations.csv",
        observations_csv_semicolons,
        ["observations.csv", "';'-separated", "comma-separated"],
    ),
]


def _params_case(snippet: str) -> Callable[[Path], str]:
    """A case that loads a params.yaml holding `snippet`."""

    def case(tmp: Path) -> str:
        from sandmine.core.config import load_params

        (tmp / "params.yaml").write_text(snippet)
        with pytest.raises(SandmineError) as err:
            load_params(tmp / "params.yaml")
        return str(err.value)

    return case


def _predict_option_case(*option: str) -> Callable[[Path], str]:
    """A case that runs `sandmine predict` with `option`: argparse's error (exit code 2), no traceback."""

    def case(tmp: Path) -> str:
        import contextlib
        import io

        from sandmine.__main__ import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
            main(["predict", str(tmp / "x.tif"), "--model", str(tmp / "m.pt"), "--out", str(tmp / "p.tif"), *option])
        assert exit_.value.code == 2 and "Traceback" not in err.getvalue()
        return err.getvalue().split("sandmine predict: ", 1)[1].strip()  # the usage lines above it left out

    return case


PARAMS_OUT_OF_RANGE = [  # (row, params.yaml snippet, fragments): one range check per field, declared beside it
    (
        "predict.batch_size: 0",
        "predict:\n  batch_size: 0\n",
        ["'predict.batch_size' must be ≥ 1 or one of: auto, got 0"],
    ),
    ("negative predict.discard_px", "predict:\n  discard_px: -8\n", ["'predict.discard_px' must be ≥ 0, got -8"]),
    ("predict.threshold: 1.5", "predict:\n  threshold: 1.5\n", ["'predict.threshold' must be in (0, 1), got 1.5"]),
    ("negative train.lr", "train:\n  lr: -0.001\n", ["'train.lr' must be > 0, got -0.001"]),
    ("train.patience: 0", "train:\n  patience: 0\n", ["'train.patience' must be ≥ 1, got 0"]),
    ("evaluate.roles: [tset]", "evaluate:\n  roles: [tset]\n", ["'evaluate.roles' must be", "test", "got ['tset']"]),
    ("empty labels.mine_classes", "labels:\n  mine_classes: []\n", ["'labels.mine_classes' must be a non-empty"]),
    ("gee.cs_threshold: 5", "gee:\n  cs_threshold: 5\n", ["'gee.cs_threshold' must be in [0, 1], got 5.0"]),
]
CASES += [(f"params {row}", _params_case(y), ["params.yaml", *f, "default"]) for row, y, f in PARAMS_OUT_OF_RANGE]
CASES += [
    (
        "params typo in a nested section",
        _params_case("train:\n  confidence:\n    hgh: 1.0\n"),
        ["unknown key 'train.confidence.hgh'", "valid keys under 'train.confidence': high, medium, low"],
    ),
    (
        "sandmine predict --stride 0",
        _predict_option_case("--stride", "0"),
        ["--stride", "predict.stride_px must be ≥ 1, got 0", "default 480"],
    ),
    (
        "sandmine predict --batch-size 0",
        _predict_option_case("--batch-size", "0"),
        ["--batch-size", "predict.batch_size must be ≥ 1 or one of: auto, got 0", "default 'auto'"],
    ),
]


def _cli_error(*argv: str) -> str:
    """The message `sandmine ARGV` ends with: exit code 1, no traceback."""
    import contextlib
    import io

    from sandmine.__main__ import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 1 and "Traceback" not in err.getvalue()
    return err.getvalue().removeprefix("error: ").strip()


def _predict_inputs(tmp: Path) -> tuple[str, str, bytes, bytes]:
    """A scene and a checkpoint, with their bytes: a case checks that both are still intact."""
    img, ckpt = _image(tmp / "scene.tif"), _checkpoint(tmp / "model.pt", BANDS)
    return str(img), str(ckpt), img.read_bytes(), ckpt.read_bytes()


def _predict_refused(*extra: str, out: str | None = None) -> Callable[[Path], str]:
    """A case: `sandmine predict scene.tif --model model.pt --out OUT EXTRA` is refused, inputs untouched."""

    def case(tmp: Path) -> str:
        img, ckpt, img_bytes, ckpt_bytes = _predict_inputs(tmp)
        names = {"IMAGE": img, "MODEL": ckpt, "TMP": str(tmp)}
        args = [names.get(x, x.replace("TMP", str(tmp))) for x in extra]
        target = names.get(out or "", (out or "TMP/pred.tif").replace("TMP", str(tmp)))
        message = _cli_error("predict", img, "--model", ckpt, "--out", target, *args)
        assert (tmp / "scene.tif").read_bytes() == img_bytes and (tmp / "model.pt").read_bytes() == ckpt_bytes
        assert not (tmp / "pred.tif").exists()  # refused before any work
        return message

    return case


def predict_out_is_a_symlink_to_the_scene(tmp: Path) -> str:
    img, ckpt, img_bytes, _ = _predict_inputs(tmp)
    (tmp / "link.tif").symlink_to(tmp / "scene.tif")
    message = _cli_error("predict", img, "--model", ckpt, "--out", str(tmp / "link.tif"))
    assert (tmp / "scene.tif").read_bytes() == img_bytes
    return message


def predict_mask_is_a_hard_link_to_the_model(tmp: Path) -> str:
    img, ckpt, _, ckpt_bytes = _predict_inputs(tmp)
    (tmp / "sub").mkdir()
    (tmp / "sub" / "m.tif").hardlink_to(tmp / "model.pt")
    message = _cli_error("predict", img, "--model", ckpt, "--out", str(tmp / "p.tif"), "--mask", str(tmp / "sub/m.tif"))
    assert (tmp / "model.pt").read_bytes() == ckpt_bytes
    return message


def predict_into_a_read_only_folder(tmp: Path) -> str:
    """Faked (root writes through permission bits): the folder refuses new files as a read-only mount does."""
    import errno
    import tempfile
    from unittest import mock

    img, ckpt, _, _ = _predict_inputs(tmp)
    (tmp / "ro").mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if Path(kwargs.get("dir", "")) == tmp / "ro":
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, **kwargs)

    with mock.patch.object(tempfile, "mkstemp", mkstemp):
        return _cli_error("predict", img, "--model", ckpt, "--out", str(tmp / "ro" / "p.tif"))


def predict_onto_a_nearly_full_disk(tmp: Path) -> str:
    """Faked free space: 1 KiB left, the 96 x 96 px probability map needs 9 KiB."""
    import shutil
    from unittest import mock

    img, ckpt, _, _ = _predict_inputs(tmp)
    with mock.patch.object(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 1024)):
        return _cli_error("predict", img, "--model", ckpt, "--out", str(tmp / "p.tif"))


def disk_full_while_writing(tmp: Path) -> str:
    """GDAL's 'Write failed' as a fake (tests/test_files.py fills a real tmpfs where mounting is allowed)."""
    from unittest import mock

    import rasterio.errors

    from sandmine.core import raster

    def fail(*args, **kwargs):
        raise rasterio.errors.RasterioIOError("Write failed: scene.tif: No space left on device")

    with mock.patch.object(raster.rasterio.shutil, "copy", fail), pytest.raises(SandmineError) as err:
        with raster.CogWriter(tmp / "p.tif", GRID, "uint8", "mine") as out:
            out.write_rows(0, np.zeros((96, 96), np.uint8))
    assert not list(tmp.glob(".tmp-*"))
    return str(err.value)


def checkpoint_weights_of_another_architecture(tmp: Path) -> str:
    import torch

    ckpt = torch.load(_checkpoint(tmp / "model.pt", BANDS), weights_only=True)
    torch.save({**ckpt, "decoder": "unet"}, tmp / "model.pt")  # linear-decoder weights, labelled unet
    return _cli_error("predict", str(_image(tmp / "scene.tif")), "--model", str(tmp / "model.pt"), "--out",
                      str(tmp / "p.tif"))  # fmt: skip


def checkpoint_without_normalisation(tmp: Path) -> str:
    import torch

    ckpt = torch.load(_checkpoint(tmp / "model.pt", BANDS), weights_only=True)
    torch.save({k: v for k, v in ckpt.items() if k not in ("mean", "std")}, tmp / "model.pt")
    return _cli_error("predict", str(_image(tmp / "scene.tif")), "--model", str(tmp / "model.pt"), "--out",
                      str(tmp / "p.tif"))  # fmt: skip


def select_out_is_the_sites_file(tmp: Path) -> str:
    (tmp / "sites.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    sites = str(tmp / "sites.geojson")
    return _cli_error("select", "--sites", sites, "--first", "2025-10-01/2025-12-31",
                      "--second", "2026-03-01/2026-05-31", "--project", "p", "--out", sites)  # fmt: skip


def _survey_refused(report: str = "s.html", metrics: str = "s.json", out: str = "out") -> Callable[[Path], str]:
    """A case: `steps.survey.run` with these outputs (names relative to tmp; RIVERS: the rivers file) is refused."""

    def case(tmp: Path) -> str:
        from sandmine.core.config import Params
        from sandmine.steps import survey

        (tmp / "rivers.geojson").write_text('{"type": "FeatureCollection", "features": []}')
        p = Params()
        p.survey.rivers, p.survey.cache_dir = str(tmp / "rivers.geojson"), str(tmp / "cache")
        path = {"RIVERS": tmp / "rivers.geojson"}
        if out == "user":  # a folder of someone's own files, a git repository among them
            (tmp / "user" / ".git").mkdir(parents=True)
            (tmp / "user" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
            (tmp / "user" / "notes.txt").write_text("field notes\n")
        with pytest.raises(SandmineError) as err:
            survey.run(p, tmp / "model.pt", path.get(out, tmp / out), path.get(report, tmp / report),
                       path.get(metrics, tmp / metrics))  # fmt: skip
        assert (tmp / "rivers.geojson").exists() and not (tmp / "cache").exists()
        if out == "user":
            assert (tmp / "user" / ".git" / "HEAD").exists() and (tmp / "user" / "notes.txt").exists()
        return str(err.value)

    return case


CASES += [
    ("predict --out names the input scene", _predict_refused(out="IMAGE"), ["--out names the same file as IMAGE"]),
    (
        "predict --mask names the --model checkpoint",
        _predict_refused("--mask", "MODEL"),
        ["--mask names the same file as --model", "model.pt", "new file name"],
    ),
    (
        "predict --polygons names --out",
        _predict_refused("--polygons", "TMP/pred.tif"),
        ["--out and --polygons name the same file", "give each its own name"],
    ),
    (
        "predict --out through a symlink to the scene",
        predict_out_is_a_symlink_to_the_scene,
        ["--out names the same file as IMAGE", "link.tif"],
    ),
    (
        "predict --mask a hard link to the checkpoint",
        predict_mask_is_a_hard_link_to_the_model,
        ["--mask names the same file as --model"],
    ),
    (
        "predict --out an existing folder",
        _predict_refused(out="TMP"),
        ["--out is an existing folder; it must name a file", "out.tif"],
    ),
    (
        "predict into a read-only folder",
        predict_into_a_read_only_folder,
        ["--out cannot be written", "does not accept new files (Read-only file system)", "choose a folder"],
    ),
    (
        "predict onto a nearly full disk",
        predict_onto_a_nearly_full_disk,
        ["--out needs about 9.0 KiB and the disk has 1.0 KiB free", "free some space"],
    ),
    (
        "disk full while writing a COG",
        disk_full_while_writing,
        ["p.tif", "the disk is full while writing it", "free now", "Write failed"],
    ),
    (
        "checkpoint weights of another architecture",
        checkpoint_weights_of_another_architecture,
        [
            "model.pt",
            "do not fit the architecture",
            "resnet18+unet",
            "missing (e.g.",
            "unexpected (e.g.",
            "train stage",
        ],
    ),
    (
        "checkpoint without mean/std",
        checkpoint_without_normalisation,
        ["model.pt", "no normalisation statistics", "'mean'", "found nothing", "re-run the train stage"],
    ),
    ("select --out names --sites", select_out_is_the_sites_file, ["--out names the same file as --sites"]),
    (
        "survey --out a folder of the user's files",
        _survey_refused(out="user"),
        ["--out", "holds files that sandmine did not write (.git, notes.txt)", "new or empty folder"],
    ),
    (
        "survey --report names the rivers file",
        _survey_refused(report="RIVERS"),
        ["--report names the same file as survey.rivers"],
    ),
    (
        "survey --metrics equals --report",
        _survey_refused(metrics="s.html"),
        ["--report and --metrics name the same file"],
    ),
    (
        "survey --out . (the folder of its inputs)",
        _survey_refused(out="."),
        ["--model", "model.pt) lies inside --out, a folder that is emptied on each run", "name another --out"],
    ),
]


def class_raster_zoomed_out(tmp: Path) -> str:
    """A 0/1/3/255 class raster seen through its overviews (QGIS zoomed out) keeps only its classes."""
    g = Grid(GRID.crs, GRID.transform, 1024, 1024)
    rng = np.random.default_rng(0)
    classes = rng.choice(np.array([0, 1, 3, 255], np.uint8), (1024, 1024))
    write_cog(tmp / "mask.tif", classes, g, ["change"])
    seen: set[int] = set()
    with rasterio.open(tmp / "mask.tif") as src:
        levels = src.overviews(1)
    for k in range(len(levels)):
        with rasterio.open(tmp / "mask.tif", overview_level=k) as ov:
            seen |= set(np.unique(ov.read(1)).tolist())
    return f"not an error: {len(levels)} overview levels hold only the classes {sorted(seen)} (mode resampling)"


def operating_threshold_from_validation(tmp: Path) -> str:
    """Probabilities of a weighted-loss model are not frequencies: the cut comes from val, not 0.5."""
    from sandmine.calibration import operating_threshold
    from sandmine.core.metrics import Histogram, quantise

    rng = np.random.default_rng(0)
    truth = rng.uniform(size=100_000) < 0.06
    prob = np.clip(np.where(truth, rng.normal(0.9, 0.08, truth.size), rng.beta(2, 5, truth.size) * 1.1), 0, 1)
    h = Histogram()
    h.add(quantise(prob), truth, np.ones(truth.size, bool))
    thr = operating_threshold(h, "area")
    ratio = lambda t: sum(h.counts(t)[:2]) / truth.sum()  # noqa: E731 - predicted / labelled pixels
    return (
        f"not an error: at 0.5 the predicted area is {ratio(0.5):.1f}x the labelled area; "
        f"at the operating threshold {thr:.2f} chosen on validation it is {ratio(thr):.2f}x"
    )


CASES += [
    ("class raster seen zoomed out (COG overviews)", class_raster_zoomed_out, ["[0, 1, 3, 255]"]),
    ("over-predicting probabilities", operating_threshold_from_validation, ["operating threshold", "1.00x"]),
]


# ------------------------------------------------------------ issue 19, items 4, 5, 6, 8, 9, 10 (branch harden-in)


def _cli_error(*argv: str) -> str:
    """`sandmine …` run as a user would: its error text (exit code 1) and no traceback."""
    import contextlib
    import io

    from sandmine.__main__ import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 1 and "Traceback" not in err.getvalue(), err.getvalue()
    return err.getvalue()


def _warped(tmp: Path, crs: str, res: float | tuple[float, float], name: str = "scene.tif") -> Path:
    """The test scene as `gdalwarp -t_srs CRS [-tr RES RES]` makes it (bilinear), band names kept."""
    from rasterio.warp import calculate_default_transform, reproject

    src = _image(tmp / "utm.tif")
    with rasterio.open(src) as s:
        rx, ry = res if isinstance(res, tuple) else (res, res)
        transform, w, h = calculate_default_transform(s.crs, crs, s.width, s.height, *s.bounds, resolution=(rx, ry))
        profile = {"driver": "GTiff", "width": w, "height": h, "count": s.count, "dtype": "float32", "crs": crs,
                   "transform": transform, "nodata": float("nan")}  # fmt: skip
        with rasterio.open(tmp / name, "w", **profile) as dst:
            for b in range(1, s.count + 1):
                out = np.full((h, w), np.nan, np.float32)
                reproject(rasterio.band(s, b), out, dst_transform=transform, dst_crs=crs, dst_nodata=np.nan)
                dst.write(out, b)
            dst.descriptions = s.descriptions
            dst.scales, dst.offsets = s.scales, s.offsets
    return tmp / name


def _predict_polygons(tmp: Path, scene: Path) -> str:
    _checkpoint(tmp / "m.pt", BANDS)
    out = ["--out", str(tmp / "p.tif"), "--polygons", str(tmp / "m.geojson"), "--window", "64", "--stride", "48"]
    message = _cli_error("predict", str(scene), "--model", str(tmp / "m.pt"), *out, "--discard", "8")
    assert not (tmp / "p.tif").exists() and not (tmp / "m.geojson").exists()  # refused before any work
    return message


def scene_in_degrees(tmp: Path) -> str:
    """gdalwarp -t_srs EPSG:4326: was an empty mask, `0 polygons, 0.0 ha`, exit 0."""
    return _predict_polygons(tmp, _warped(tmp, "EPSG:4326", 0.0001))


def scene_in_us_feet(tmp: Path) -> str:
    """A projected CRS whose unit is the US survey foot (a State Plane zone), 30 ft pixels."""
    return _predict_polygons(tmp, _warped(tmp, "EPSG:2263", 30.0))


def scene_in_web_mercator(tmp: Path) -> str:
    """Metres, but Web Mercator's: at 24.8° N a "10 m" pixel is 9.1 m on the ground (areas 17 % too big)."""
    return _predict_polygons(tmp, _warped(tmp, "EPSG:3857", 10.0))


def scene_coarser_than_training(tmp: Path) -> str:
    """A 30 m scene (Landsat-like) for a model trained on Sentinel-2's 10 m."""
    return _predict_polygons(tmp, _warped(tmp, "EPSG:32644", 30.0))


def scene_finer_than_training(tmp: Path) -> str:
    """A 3 m scene (PlanetScope-like) for a model trained on 10 m."""
    return _predict_polygons(tmp, _warped(tmp, "EPSG:32644", 3.0))


def infer_stage_scene_in_degrees(tmp: Path) -> str:
    """The infer/evaluate stages and the survey predict through `predict_file`: the same refusal there."""
    from sandmine import models
    from sandmine.prediction import Stitch, predict_file

    model, ckpt = models.load_checkpoint(str(_checkpoint(tmp / "m.pt", BANDS)))
    with pytest.raises(SandmineError) as err:
        predict_file(model, ckpt, _warped(tmp, "EPSG:4326", 0.0001), tmp / "p.tif", Stitch(64, 48, 8, 2, "gaussian"))
    assert not (tmp / "p.tif").exists()
    return str(err.value)


def areas_on_a_grid_in_degrees(tmp: Path) -> str:
    """Any area in hectares (evaluate, survey, the CLI's minimum mapping unit) refuses a grid in degrees."""
    grid = Grid(CRS.from_epsg(4326), Affine(0.0001, 0, 84.0, 0, -0.0001, 25.0), 96, 96)
    with pytest.raises(SandmineError) as err:
        _ = grid.pixel_area_ha
    return str(err.value)


def site_east_edge_on_zone_boundary(tmp: Path) -> str:
    """East edge exactly 78.0: was refused with "split the site at 78° E"; it lies in zone 43."""
    from sandmine.core.raster import grid_for_bounds
    from sandmine.sources.base import check_one_zone

    for bounds, epsg in [((77.9, 25.0, 78.0, 25.1), 32643), ((78.0, 25.0, 78.1, 25.1), 32644),
                         ((174.5, -41.4, 180.0, -41.0), 32760), ((-180.0, -17.0, -179.8, -16.8), 32701),
                         ((30.0, -0.1, 36.0, 0.1), 32636)]:  # fmt: skip
        check_one_zone("edge", bounds)
        assert grid_for_bounds(bounds).crs.to_epsg() == epsg, bounds
    with pytest.raises(SandmineError) as err:
        check_one_zone("across", (77.9, 25.0, 78.000001, 25.1))
    return str(err.value)


def site_across_the_antimeridian(tmp: Path) -> str:
    """A polygon across 180° (Fiji, Chukotka) reads as one around the world: named as such."""
    from sandmine.sources.base import check_one_zone

    with pytest.raises(SandmineError) as err:
        check_one_zone("fiji", (-179.9, -16.9, 179.9, -16.7))
    return str(err.value)


def params_env_interpolation(tmp: Path) -> str:
    """`${oc.env:LABELBOX_API_KEY}` in params.yaml: the key's value was printed in an error message."""
    import os

    from sandmine.core.config import load_params

    os.environ["SANDMINE_TEST_SECRET"] = "lb-s3cr3t-value"
    try:
        for value in ["${oc.env:SANDMINE_TEST_SECRET}", "x/${oc.decode:${oc.env:SANDMINE_TEST_SECRET}}/y",
                      "${ oc.env : SANDMINE_TEST_SECRET }"]:  # fmt: skip
            (tmp / "params.yaml").write_text(f'survey:\n  rivers: "{value}"\n')
            with pytest.raises(SandmineError) as err:
                load_params(tmp / "params.yaml")
            assert "s3cr3t" not in str(err.value)
        (tmp / "params.yaml").write_text("labels:\n  project_id: ${oc.env:SANDMINE_TEST_SECRET}\n")
        with pytest.raises(SandmineError) as err:
            load_params(tmp / "params.yaml")
    finally:
        del os.environ["SANDMINE_TEST_SECRET"]
    assert "s3cr3t" not in str(err.value)
    return str(err.value)


def safe_product_asked_for_radar(tmp: Path) -> str:
    """bands: [..., VV, VH, CLOUD] with a Sentinel-2 SAFE: was told to download the complete product."""
    from sandmine.sources.local import stack_safe

    img = tmp / "S2B_MSIL2A.SAFE" / "GRANULE" / "L2A_T44RQR" / "IMG_DATA" / "R10m"
    img.mkdir(parents=True)
    for b in ("B02", "B03", "B04", "B08"):
        (img / f"T44RQR_20251115T050000_{b}_10m.jp2").write_bytes(b"")
    with pytest.raises(SandmineError) as err:
        stack_safe(tmp / "S2B_MSIL2A.SAFE", ["B2", "B3", "B4", "B8", "VV", "VH", "CLOUD"])
    return str(err.value)


def zero_padded_band_names(tmp: Path) -> str:
    """Bands described B02, B03, B04, B08 (ESA, SNAP, QGIS): were told to "export the missing bands"."""
    from sandmine import models
    from sandmine.prediction import Stitch, predict_file

    padded = ["B02", "B03", "B04", "B08", "b11", "B12", "vv", "VH"]
    _image(tmp / "a.tif", bands=BANDS)
    _image(tmp / "b.tif", bands=padded)  # the same pixels (same seed), other spellings
    np.testing.assert_array_equal(read_image(tmp / "a.tif", BANDS).data, read_image(tmp / "b.tif", BANDS).data)
    model, ckpt = models.load_checkpoint(str(_checkpoint(tmp / "m.pt", BANDS)))
    predict_file(model, ckpt, tmp / "b.tif", tmp / "p.tif", Stitch(64, 48, 8, 2, "gaussian"))
    assert (tmp / "p.tif").exists()
    return "not an error: band descriptions are read as B1…B12, B8A, VV, VH, CLOUD in any case, B02 as B2"


def unknown_band_names(tmp: Path) -> str:
    """Bands described red, green, blue, nir: the message says how bands must be named."""
    _image(tmp / "scene.tif", bands=["blue", "green", "red", "nir", "B11", "B12", "VV", "VH"])
    with pytest.raises(SandmineError) as err:
        read_image(tmp / "scene.tif", BANDS)
    return str(err.value)


def _export_row(status: str, x: float = 81.003, labels: bool = True) -> dict:
    """A Labelbox export row (geospatial project) for observation `o` with one mine at lon `x`."""
    ring = [[x, 24.86], [x + 0.0004, 24.86], [x + 0.0004, 24.8604], [x, 24.8604], [x, 24.86]]
    obj = {"name": "mine", "value": "mine", "geojson": {"type": "Polygon", "coordinates": [ring]}}
    label = {"id": f"lb-{status}", "annotations": {"objects": [obj]}}
    project = {"labels": [label] if labels else [], "project_details": {"workflow_status": status}}
    return {"data_row": {"id": "ck-o", "global_key": "o"}, "projects": {"p1": project}}


def _pull(tmp: Path, *rows: dict) -> str:
    """annotate-pull on a concatenated export holding `rows`: its index.csv line of `o`, or the error."""
    from sandmine.core.config import Params
    from sandmine.steps import annotate_pull

    for d in ("source", "images"):
        (tmp / d).mkdir(exist_ok=True)
    _image(tmp / "images" / "o.tif")
    (tmp / "images" / "manifest.csv").write_text("obs_id,site_id,date,role,file\no,s,2025-11-15,labelled,o.tif\n")
    (tmp / "source" / "labels.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = Params()
    p.labels.project_id = "p1"
    try:
        annotate_pull.run(p, tmp / "source", tmp / "images", tmp / "labels", tmp / "labels.json")
    except SandmineError as exc:
        return str(exc)
    return (tmp / "labels" / "index.csv").read_text().splitlines()[1]


def labelbox_done_and_in_review_copies(tmp: Path) -> str:
    """Two exports joined: DONE then IN_REVIEW of one data row. Was: "no observation has finished labels"."""
    line = _pull(tmp, _export_row("DONE"), _export_row("IN_REVIEW", labels=False))
    assert line.startswith("o,done,1,"), line
    assert _pull(tmp, _export_row("IN_REVIEW", labels=False), _export_row("DONE")).startswith("o,done,1,")
    return f"not an error: the finished copy is kept (index.csv: {line}), the duplicate named in the log"


def labelbox_two_different_done_copies(tmp: Path) -> str:
    """Two exports joined, the data row DONE in both with different polygons: which is right is unknown."""
    return _pull(tmp, _export_row("DONE"), _export_row("DONE", x=81.005))


def _logged(fn: Callable[[], object]) -> str:
    """What `fn` logs through sandmine's loggers (INFO and above), one record a line."""
    import logging

    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("sandmine")
    level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not .level =: it clears the loggers' cached decisions
    logger.addHandler(handler)
    try:
        fn()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return "\n".join(records)


def _two_layer_gpkg(path: Path) -> Path:
    import geopandas as gpd
    from shapely.geometry import LineString, box

    son = LineString([(82.5, 24.4), (82.6, 24.42)])
    gpd.GeoDataFrame({"river": ["Son"]}, geometry=[son], crs="EPSG:4326").to_file(path, layer="son", driver="GPKG")
    ken = gpd.GeoDataFrame({"river": ["Ken", "Betwa"]}, geometry=[son, son], crs="EPSG:4326")
    ken.to_file(path, layer="ken_betwa", driver="GPKG")
    gpd.GeoDataFrame(geometry=[box(80, 24, 83, 26)], crs="EPSG:4326").to_file(path, layer="basin", driver="GPKG")
    return path


def rivers_gpkg_with_two_layers(tmp: Path) -> str:
    """Was: the first layer surveyed, the others dropped (a pyogrio warning only)."""
    from sandmine.survey.rivers import read_rivers

    path = _two_layer_gpkg(tmp / "rivers.gpkg")
    assert [r.name for r in read_rivers(path, "river", layer="ken_betwa")] == ["Betwa", "Ken"]
    with pytest.raises(SandmineError) as err:
        read_rivers(path, "river")
    return str(err.value)


def export_rivers_gpkg_with_two_layers(tmp: Path) -> str:
    """The export stage's rivers (source.rivers_file, for aoi.rivers: vector) go through the same reader."""
    from sandmine.core.vectors import rivers_geojson

    with pytest.raises(SandmineError) as err:
        rivers_geojson(_two_layer_gpkg(tmp / "rivers.gpkg"), "")
    return str(err.value)


def river_reach_with_null_name(tmp: Path) -> str:
    """Was: a reach whose name is null dropped without a word. Now an `(unnamed)` river, named in the log."""
    from sandmine.survey.rivers import read_rivers

    (tmp / "rivers.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"river": name},
         "geometry": {"type": "LineString", "coordinates": [[82.5 + k / 10, 24.4], [82.55 + k / 10, 24.42]]}}
        for k, name in enumerate(["Son", None, " ", "Son"])]}))  # fmt: skip
    rivers: list = []
    log = _logged(lambda: rivers.extend(read_rivers(tmp / "rivers.geojson", "river")))
    assert [r.name for r in rivers] == ["(unnamed)", "Son"]
    return f"not an error: {log}"


def rivers_file_without_fields(tmp: Path) -> str:
    """Was told to set survey.river_field, which cannot help when the file has no field at all."""
    import geopandas as gpd
    from shapely.geometry import LineString

    path = tmp / "rivers.gpkg"
    gpd.GeoDataFrame(geometry=[LineString([(82.5, 24.4), (82.6, 24.42)])], crs="EPSG:4326").to_file(path)
    from sandmine.survey.rivers import read_rivers

    with pytest.raises(SandmineError) as err:
        read_rivers(path, "river")
    return str(err.value)


def predict_workers_scene_in_degrees(tmp: Path) -> str:
    """`sandmine predict --workers 2` (the Dask path): refused before any worker starts."""
    scene = _warped(tmp, "EPSG:4326", 0.0001)
    _checkpoint(tmp / "m.pt", BANDS)
    message = _cli_error("predict", str(scene), "--model", str(tmp / "m.pt"), "--out", str(tmp / "p.tif"),
                         "--workers", "2", "--window", "64", "--stride", "48", "--discard", "8")  # fmt: skip
    assert not (tmp / "p.tif").exists()
    return message


def local_source_scene_in_degrees(tmp: Path) -> str:
    """The local source puts a user's GeoTIFF on the site's UTM grid: a scene in degrees is reprojected and
    the log says so; a 30 m scene is resampled with a warning that the maps will be blurrier."""
    from sandmine.sources.local import read_geotiff

    scene = _warped(tmp, "EPSG:4326", 0.0001)
    data: list = []
    log = _logged(lambda: data.append(read_geotiff(scene, BANDS, GRID)))
    assert data[0].shape == (len(BANDS), 96, 96) and np.isfinite(data[0][:, 10:-10, 10:-10]).all()
    log += "\n" + _logged(lambda: read_geotiff(_warped(tmp, "EPSG:32644", 30.0, "coarse.tif"), BANDS, GRID))
    return f"not an error: {log}"


def l2a_product_asked_for_b10(tmp: Path) -> str:
    """bands with B10 and an L2A product, which never has it: was told to download the complete product."""
    from sandmine.sources.local import stack_safe

    img = tmp / "S2A_MSIL2A_20251115.SAFE" / "GRANULE" / "L2A_T44RQR" / "IMG_DATA" / "R10m"
    img.mkdir(parents=True)
    for b in ("B02", "B03", "B04"):
        (img / f"T44RQR_20251115T050000_{b}_10m.jp2").write_bytes(b"")
    with pytest.raises(SandmineError) as err:
        stack_safe(tmp / "S2A_MSIL2A_20251115.SAFE", ["B2", "B3", "B4", "B10"])
    return str(err.value)


def band_described_twice(tmp: Path) -> str:
    """B02 and B2 in one file are one band named twice: which one is meant cannot be told."""
    _image(tmp / "scene.tif", bands=["B02", "B3", "B4", "B8", "B11", "B12", "VV", "B2"])
    with pytest.raises(SandmineError) as err:
        read_image(tmp / "scene.tif", BANDS[:6])
    return str(err.value)


def river_across_the_antimeridian(tmp: Path) -> str:
    """A reach from 179.9° to -179.9° (Fiji) reads as one around the world: every zone would be surveyed."""
    from sandmine.survey.rivers import read_rivers

    reach = {"type": "LineString", "coordinates": [[179.9, -16.8], [-179.9, -16.7]]}
    (tmp / "rivers.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"river": "Labasa"}, "geometry": reach}]}))  # fmt: skip
    with pytest.raises(SandmineError) as err:
        read_rivers(tmp / "rivers.geojson", "river")
    return str(err.value)


CASES += [
    ("scene in degrees (gdalwarp -t_srs EPSG:4326)", scene_in_degrees,
     ["scene.tif", "EPSG:4326", "in degrees", "gdalwarp -t_srs EPSG:32644 -tr 10 10"]),
    ("scene in US survey feet (EPSG:2263)", scene_in_us_feet,
     ["scene.tif", "in units of US survey foot", "gdalwarp -t_srs EPSG:32644"]),
    ("scene in Web Mercator (EPSG:3857)", scene_in_web_mercator,
     ["scene.tif", "does not keep areas", "+22%", "gdalwarp -t_srs EPSG:32644"]),
    ("30 m scene for a 10 m model", scene_coarser_than_training,
     ["scene.tif", "30.0 × 30.0 m", "trained on 10 m pixels", "0.33 times as many pixels across",
      "gdalwarp -t_srs EPSG:32644 -tr 10 10"]),
    ("3 m scene for a 10 m model", scene_finer_than_training,
     ["3.0 × 3.0 m", "trained on 10 m pixels", "3.3 times as many", "-tr 10 10"]),
    ("sandmine predict --workers: scene in degrees", predict_workers_scene_in_degrees,
     ["scene.tif", "in degrees", "gdalwarp -t_srs EPSG:32644"]),
    ("local source: scene in degrees, scene at 30 m", local_source_scene_in_degrees,
     ["reprojected from EPSG:4326 (degrees) to the site's UTM grid EPSG:32644 at 10 m",
      "pixels of 30.0 × 30.0 m on the ground", "blurrier"]),
    ("infer stage: scene in degrees", infer_stage_scene_in_degrees, ["scene.tif", "in degrees", "gdalwarp"]),
    ("areas on a grid in degrees", areas_on_a_grid_in_degrees, ["pixel areas", "degrees", "gdalwarp"]),
    ("site whose east edge is a zone boundary (78.0)", site_east_edge_on_zone_boundary,
     ["'across'", "spans two UTM zones (43 and 44, boundary at 78° E)", "edge exactly on a boundary is fine"]),
    ("site across the antimeridian", site_across_the_antimeridian,
     ["'fiji'", "antimeridian", "split the site at 180°"]),
    ("params ${oc.env:…} interpolation", params_env_interpolation,
     ["params.yaml", "'labels.project_id'", "oc.env", "environment", ".dvc/config.local"]),
    ("SAFE product asked for VV, VH, CLOUD", safe_product_asked_for_radar,
     ["S2B_MSIL2A.SAFE", "['VV', 'VH', 'CLOUD']", "never has them", "'bands' and 'model.bands'"]),
    ("L2A product asked for B10", l2a_product_asked_for_b10,
     ["MSIL2A", "B10 (cirrus) is not in Sentinel-2 L2A", "drop B10 from 'bands' and 'model.bands'"]),
    ("band described twice (B02 and B2)", band_described_twice, ["scene.tif", "['B2'] are described twice"]),
    ("bands named B02…B08", zero_padded_band_names, ["B02 as B2"]),
    ("rivers GeoPackage with several layers", rivers_gpkg_with_two_layers,
     ["rivers.gpkg", "holds 3 layers", "'son': 1 LineString", "'ken_betwa': 2 LineString", "'basin': 1 Polygon",
      "set 'survey.rivers_layer'"]),
    ("export: rivers GeoPackage with several layers", export_rivers_gpkg_with_two_layers,
     ["rivers.gpkg", "holds 3 layers", "set 'source.rivers_layer'"]),
    ("river reach with a null name", river_reach_with_null_name,
     ["2 feature(s) with an empty 'river' are surveyed as the river '(unnamed)' (features 2, 3, counting from 1)",
      "4 feature(s) of", "read as 2 river(s)", "km of line"]),
    ("river across the antimeridian", river_across_the_antimeridian,
     ["rivers.geojson", "feature(s) 1 (counting from 1) span more than 180°", "split those features at 180°"]),
    ("rivers file without any field", rivers_file_without_fields,
     ["rivers.gpkg", "no field 'river' (fields: [])", "add a text field 'river'"]),
    ("Labelbox export: DONE and IN_REVIEW copies of a row", labelbox_done_and_in_review_copies, ["not an error"]),
    ("Labelbox export: two different DONE copies of a row", labelbox_two_different_done_copies,
     ["'o' is in the export 2 times with different finished labels", "export row 1: DONE", "export row 2: DONE",
      "label lb-DONE", "export the project once"]),
    ("params bands: [B02, B03, B04, B08]", _params_case("bands: [B02, B03, B04, B08]\n"),
     ["params.yaml", "'bands' must be", "write B02 as B2, B03 as B3, B04 as B4, B08 as B8"]),
    ("bands named red, green, blue, nir", unknown_band_names,
     ["['blue', 'green', 'red', 'nir']", "name each band B1, B2", "set_band_description"]),
]  # fmt: skip


@pytest.mark.parametrize(("row", "case", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named_and_explained(tmp_path, row, case, fragments):
    message = case(tmp_path)
    for fragment in fragments:
        assert fragment in message, f"{row}: {fragment!r} not in {message!r}"
    if "not an error" not in message and "skipped" not in message and "repaired" not in message:
        assert "How to fix" in message, f"{row}: no fix offered"


if __name__ == "__main__":
    import tempfile

    print("| bad input | message |\n|---|---|")
    for row, case, _ in CASES:
        with tempfile.TemporaryDirectory() as d:
            print(f"| {row} | {case(Path(d)).replace(chr(10), ' — ').replace('|', '/')} |")
