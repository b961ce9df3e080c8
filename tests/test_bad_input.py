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

from sandmine.config import LabelsParams
from sandmine.errors import SandmineError
from sandmine.raster import Grid, read_image, write_cog

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
    from sandmine.steps.common import scene

    for d in ("images", "labels", "aoi"):
        (tmp / d).mkdir()
    _image(tmp / "images" / "o.tif", np.full((len(BANDS), 96, 96), np.nan, np.float32))
    write_cog(tmp / "labels" / "o.tif", np.zeros((1, 96, 96), np.uint8), GRID, ["label"], nodata=None)
    write_cog(tmp / "aoi" / "o.tif", np.ones((1, 96, 96), np.uint8), GRID, ["aoi"], nodata=None)
    with pytest.raises(SandmineError) as err:
        scene("o", BANDS, tmp / "images", tmp / "labels", tmp / "aoi")
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
    from sandmine.labels import rasterize
    from sandmine.sources.labelbox import Annotation, LabelRow

    far = Polygon([(84.0, 25.0), (84.01, 25.0), (84.01, 25.01), (84.0, 25.01)])  # lon/lat, km away
    row = LabelRow("o", "done", [Annotation("mine", far, "high", in_pixels=False)])
    mask, feats = rasterize(row, GRID, np.ones((96, 96), bool), LabelsParams(mine_classes=["mine"]))
    assert (mask == 0).all() and not feats
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
    from sandmine.sources.gee import check_one_zone

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
    from sandmine.config import load_params

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
    from sandmine.sites import read_observations, read_sites

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
]


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
