"""Dask scale-out: tiles and observations across worker processes give the in-process answer."""

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from sandmine import models, scale
from sandmine.core.raster import Grid, write_cog
from sandmine.prediction import Stitch

BANDS = ["B2", "B3", "B4", "B8"]


@pytest.fixture
def setup(tmp_path, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = models.build("resnet18", "unet", list(BANDS))
    ckpt_path = tmp_path / "model.pt"
    meta = {"encoder": "resnet18", "decoder": "unet", "bands": BANDS, "mean": [0.1] * 4, "std": [0.1] * 4}
    torch.save(models.save_checkpoint(model, meta), ckpt_path)
    jobs = []
    for i, (h, w) in enumerate([(200, 130), (96, 160)]):
        grid = Grid(CRS.from_epsg(32644), from_origin(500_000, 2_800_000, 10, 10), h, w)
        path = tmp_path / f"img{i}.tif"
        write_cog(path, rng.uniform(0, 0.3, (4, h, w)).astype(np.float32), grid, BANDS, {"date": f"2026-0{i + 1}-01"})
        jobs.append(path)
    return ckpt_path, jobs


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.tags()


def test_tiles_cover_rows_once():
    assert scale.tiles(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert scale.tiles(4, 4) == [(0, 4)]


def test_local_cluster_with_tiles_equals_in_process(setup, tmp_path):
    ckpt_path, srcs = setup
    s = Stitch(64, 48, 8, 4, "gaussian")
    inline = [scale.Job(src, tmp_path / "inline" / src.name) for src in srcs]
    scale.predict_many(ckpt_path, inline, s, workers=0)
    dask = [scale.Job(src, tmp_path / "dask" / src.name, (("site_id", "x"),)) for src in srcs]
    scale.predict_many(ckpt_path, dask, s, workers=2, tile_rows=80)  # image 0 in 3 tiles
    for a, b in zip(inline, dask):
        pa, _ = _read(a.dst)
        pb, tags = _read(b.dst)
        assert np.array_equal(pa, pb)
        assert tags["site_id"] == "x" and tags["scale"] == "probability = value / 255"
    assert not list((tmp_path / "dask").glob(".tmp-*"))  # tiles removed after joining


def test_task_error_reaches_the_caller(setup, tmp_path):
    from sandmine.core.errors import SandmineError

    ckpt_path, srcs = setup
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(SandmineError, match="bad.tif"):
        scale.predict_many(ckpt_path, [scale.Job(bad, tmp_path / "out.tif")], Stitch(64, 48, 8, 4), workers=0)


def test_the_device_string_reaches_each_dask_task(setup, tmp_path, monkeypatch):
    import torch
    from dask.distributed import LocalCluster

    ckpt_path, srcs = setup
    asked, loaded = [], []
    real_resolve, real_model = scale.resolve_device, scale._model
    monkeypatch.setattr(scale, "resolve_device", lambda spec, where: asked.append(spec) or real_resolve(spec, where))
    monkeypatch.setattr(scale, "_model", lambda path, device: loaded.append(device) or real_model(path, device))
    jobs = [scale.Job(src, tmp_path / src.name) for src in srcs]
    # workers in this process (threads), so the tasks' calls are seen here; 3 + 2 row tiles
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        scale.predict_many(ckpt_path, jobs, Stitch(64, 48, 8, 4), 0, cluster.scheduler_address, 80, 1, "auto")
    assert asked == ["auto"] * 5  # resolved in the task, not before: a remote worker may have a GPU we lack
    assert loaded == [torch.device("cpu")] * 5  # auto without CUDA
    assert all((tmp_path / src.name).exists() for src in srcs)
