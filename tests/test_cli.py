"""`sandmine predict` on any GeoTIFF with the model's bands: COG, mask and polygons; clear errors."""

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from torch import nn

from sandmine import models
from sandmine.__main__ import main
from sandmine.raster import Grid, write_cog

BANDS = ["B2", "B3", "B4"]


class Bright(nn.Module):
    """Logit = 50 × (B4 − 0.5) in normalised units: bright red pixels are 'mines'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 50 * (x[:, 2:3] - 0.5)


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    grid = Grid(CRS.from_epsg(32644), from_origin(500_000, 2_800_000, 10, 10), 150, 200)
    data = np.zeros((3, 150, 200), np.float32)
    data[2, 40:80, 50:100] = 1.0  # a 40 x 50 px (20 ha) bright block
    img = tmp_path / "scene.tif"
    write_cog(img, data, grid, BANDS)
    ckpt = tmp_path / "model.pt"
    meta = {"encoder": "resnet18", "decoder": "unet", "bands": BANDS, "mean": [0.0] * 3, "std": [1.0] * 3}
    torch.save(models.save_checkpoint(nn.Conv2d(3, 1, 1), meta), ckpt)
    monkeypatch.setattr(models, "load_checkpoint", lambda path: (Bright(), {**meta, "path": path}))
    return img, ckpt, grid


def test_predict_writes_cog_mask_and_polygons(inputs, tmp_path, capsys):
    img, ckpt, grid = inputs
    out, poly, mask = tmp_path / "p.tif", tmp_path / "m.geojson", tmp_path / "m.tif"
    main(["predict", str(img), "--model", str(ckpt), "--out", str(out), "--polygons", str(poly), "--mask", str(mask),
          "--window", "64", "--stride", "48", "--discard", "8"])  # fmt: skip
    with rasterio.open(out) as ds:
        p = ds.read(1)
        assert ds.crs == grid.crs and ds.transform == grid.transform
    assert (p[40:80, 50:100] == 255).all() and p.sum() == 255 * 40 * 50
    with rasterio.open(mask) as ds:
        assert ds.read(1).sum() == 40 * 50
    feats = json.loads(poly.read_text())["features"]
    assert len(feats) == 1 and feats[0]["properties"]["area_ha"] == pytest.approx(20.0)
    assert "1 polygons, 20.0 ha" in capsys.readouterr().out


def test_missing_band_is_a_clear_error(inputs, tmp_path, capsys):
    img, ckpt, grid = inputs
    small = Grid(grid.crs, grid.transform, 100, 100)
    write_cog(tmp_path / "two.tif", np.zeros((2, 100, 100), np.float32), small, ["B2", "B3"])
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(tmp_path / "two.tif"), "--model", str(ckpt), "--out", str(tmp_path / "x.tif")])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "B4" in err and "two.tif" in err
    assert not (tmp_path / "x.tif").exists() and not list(tmp_path.glob(".tmp-*"))
