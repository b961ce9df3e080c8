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
from sandmine.core.raster import Grid, write_cog

BANDS = ["B2", "B3", "B4"]


class Bright(nn.Module):
    """Logit = 50 × (B4 − 0.5) in normalised units: bright red pixels are 'mines'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 50 * (x[:, 2:3] - 0.5)


@pytest.fixture
def devices():
    """The devices that the fake `models.load_checkpoint` of `inputs` was asked for."""
    return []


@pytest.fixture
def inputs(tmp_path, monkeypatch, devices):
    grid = Grid(CRS.from_epsg(32644), from_origin(500_000, 2_800_000, 10, 10), 150, 200)
    data = np.zeros((3, 150, 200), np.float32)
    data[2, 40:80, 50:100] = 1.0  # a 40 x 50 px (20 ha) bright block
    img = tmp_path / "scene.tif"
    write_cog(img, data, grid, BANDS)
    ckpt = tmp_path / "model.pt"
    meta = {"encoder": "resnet18", "decoder": "unet", "bands": BANDS, "mean": [0.0] * 3, "std": [1.0] * 3}
    torch.save(models.save_checkpoint(nn.Conv2d(3, 1, 1), meta), ckpt)

    def load(path, device="cpu"):
        devices.append(device)
        return Bright(), {**meta, "path": path}

    monkeypatch.setattr(models, "load_checkpoint", load)
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


def test_predict_on_the_cpu_device(inputs, devices, tmp_path):
    img, ckpt, _ = inputs
    out = tmp_path / "p.tif"
    main(["predict", str(img), "--model", str(ckpt), "--out", str(out), "--device", "cpu",
          "--window", "64", "--stride", "48", "--discard", "8"])  # fmt: skip
    assert devices == [torch.device("cpu")]
    with rasterio.open(out) as ds:
        assert ds.read(1).sum() == 255 * 40 * 50


def test_predict_on_a_gpu_torch_does_not_see_is_a_clear_error(inputs, devices, tmp_path, capsys, monkeypatch):
    img, ckpt, _ = inputs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for workers in ("0", "2"):  # in this process, or before any Dask worker starts
        with pytest.raises(SystemExit) as exc:
            main(["predict", str(img), "--model", str(ckpt), "--out", str(tmp_path / "p.tif"), "--device", "cuda:1",
                  "--workers", workers])  # fmt: skip
        assert exc.value.code == 1
        err = capsys.readouterr().err
        assert "sandmine predict --device" in err and "device 'cuda:1' asked" in err and "no CUDA device" in err
    assert not (tmp_path / "p.tif").exists() and not devices


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


def test_predict_defaults_come_from_params_schema():
    from sandmine.__main__ import parser
    from sandmine.core.config import InferParams, PredictParams

    a = parser().parse_args(["predict", "x.tif", "--model", "m.pt", "--out", "p.tif"])
    p, i = PredictParams(), InferParams()
    assert (a.window, a.stride, a.discard, a.batch_size, a.blend) == (
        p.window_px, p.stride_px, p.discard_px, p.batch_size, p.blend
    )  # fmt: skip
    assert (a.threshold, a.tile_rows, a.threads, a.min_area_ha) == (p.threshold, p.tile_rows, p.threads, i.min_area_ha)
    assert (a.device, a.precision) == (p.device, p.precision) == ("auto", "32")


@pytest.mark.parametrize(("text", "value"), [("auto", "auto"), ("8", 8)])
def test_predict_batch_size_takes_a_count_or_auto(text, value):
    from sandmine.__main__ import parser

    a = parser().parse_args(["predict", "x.tif", "--model", "m.pt", "--out", "p.tif", "--batch-size", text])
    assert a.batch_size == value


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--stride", "0"], "--stride: predict.stride_px must be ≥ 1, got 0"),
        (["--batch-size", "0"], "--batch-size: predict.batch_size must be ≥ 1 or one of: auto, got 0"),
        (["--discard", "-2"], "--discard: predict.discard_px must be ≥ 0, got -2"),
        (["--window", "100"], "--window: predict.window_px must be a multiple of 32 and ≥ 32, got 100"),
        (["--threshold", "1.5"], "--threshold: predict.threshold must be in (0, 1), got 1.5"),
        (["--blend", "max"], "--blend: predict.blend must be one of: mean | gaussian, got 'max'"),
        (["--stride", "ten"], "--stride: predict.stride_px must be an integer, got 'ten'"),
        (["--batch-size", "max"], "--batch-size: predict.batch_size must be ≥ 1 or one of: auto, got 'max'"),
        (["--device", "gpu"], "--device: predict.device must be one of: auto | cpu | cuda | cuda:N, got 'gpu'"),
        (["--precision", "16"], "--precision: predict.precision must be one of: 32 | bf16, got '16'"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else "",
)
def test_predict_option_out_of_range_exits_without_traceback(tmp_path, capsys, option, fragment):
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(tmp_path / "x.tif"), "--model", "m.pt", "--out", str(tmp_path / "p.tif"), *option])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and "How to fix" in err and "Traceback" not in err


def test_predict_gappy_windows_name_the_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(tmp_path / "x.tif"), "--model", "m.pt", "--out", str(tmp_path / "p.tif"),
              "--window", "64", "--stride", "64", "--discard", "8"])  # fmt: skip
    assert exc.value.code == 1
    assert "lower --stride or --discard, or raise --window" in capsys.readouterr().err


@pytest.fixture
def faint(tmp_path, monkeypatch):
    """A scene with one faint block (probability 0.6, 20 x 20 px = 4 ha) and a checkpoint whose metadata we set."""
    grid = Grid(CRS.from_epsg(32644), from_origin(500_000, 2_800_000, 10, 10), 96, 96)
    data = np.zeros((3, 96, 96), np.float32)
    data[2, 30:50, 30:50] = 0.5 + np.log(0.6 / 0.4) / 50  # Bright's logit gives probability 0.6
    write_cog(tmp_path / "scene.tif", data, grid, BANDS)
    meta = {"encoder": "resnet18", "decoder": "unet", "bands": BANDS, "mean": [0.0] * 3, "std": [1.0] * 3}

    def run(extra_meta, *args):
        monkeypatch.setattr(models, "load_checkpoint", lambda path, device="cpu": (Bright(), {**meta, **extra_meta}))
        mask = tmp_path / "m.tif"
        main(["predict", str(tmp_path / "scene.tif"), "--model", "m.pt", "--out", str(tmp_path / "p.tif"),
              "--mask", str(mask), "--window", "64", "--stride", "48", "--discard", "8", *args])  # fmt: skip
        with rasterio.open(mask) as ds:
            return int(ds.read(1).sum())

    return run


def test_predict_uses_checkpoint_threshold(faint, capsys):
    assert faint({"thresholds": {"best_f1": 0.7, "area": 0.55}}) == 0
    assert "threshold 0.7 (the checkpoint's operating threshold for best_f1" in capsys.readouterr().out
    assert faint({"thresholds": {"best_f1": 0.55, "area": 0.7}}) == 400


def test_predict_operating_point_picks_the_stored_threshold(faint, capsys):
    assert faint({"thresholds": {"best_f1": 0.7, "area": 0.55}}, "--operating-point", "area") == 400
    assert "threshold 0.55 (the checkpoint's operating threshold for area" in capsys.readouterr().out


def test_predict_threshold_option_overrides_checkpoint(faint, capsys):
    assert faint({"thresholds": {"best_f1": 0.7, "area": 0.7}}, "--threshold", "0.5") == 400
    assert "threshold 0.5 (--threshold)" in capsys.readouterr().out


def test_predict_old_checkpoint_falls_back_to_half_with_warning(faint, capsys):
    assert faint({}) == 400
    out, err = capsys.readouterr()
    assert "threshold 0.5" in out and "warning" in err and "no operating threshold" in err


def test_predict_refuses_checkpoint_threshold_out_of_range(faint, capsys):
    with pytest.raises(SystemExit) as exc:
        faint({"thresholds": {"best_f1": 1.2, "area": 0.5}})
    assert exc.value.code == 1
    assert "stored threshold for 'best_f1' is 1.2, not in (0, 1)" in capsys.readouterr().err
