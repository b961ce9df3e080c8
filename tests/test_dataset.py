"""Training windows streamed from the COGs: the same windows for any number of workers, the same pixels
as whole scenes in memory, never a whole scene read, and band statistics in one streaming pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio.io
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from sandmine import dataset, training
from sandmine.core.bands import channels, read_names
from sandmine.core.metrics import Histogram
from sandmine.core.raster import Grid, read_image, read_mask, to_crs, write_cog
from sandmine.core.windows import crop
from sandmine.dataset import BLOCK_PX, TRAIN, VAL, CogScene, Scene, TileCache, WindowLoader, Windows
from sandmine.labels import confidence_weights
from sandmine.sources.stored import NODATA, store
from sandmine.steps.scoring import add_scored, read_scored

BANDS = ["B2", "B3", "B4", "B8", "B11", "VV"]
INDICES = ["NDWI"]
CONFIDENCE = {"high": 1.0, "medium": 0.75, "low": 0.5}


def _write_scene(folder: Path, obs_id: str, h: int, w: int, seed: int, aoi_rows: slice | None = None) -> Grid:
    """An int16 image with scales and nodata (as every source stores it), label, AOI and polygons."""
    rng = np.random.default_rng(seed)
    grid = Grid(CRS.from_epsg(32644), from_origin(500_000 + 10_000 * seed, 2_800_000, 10, 10), h, w)
    data = rng.uniform(0.02, 0.4, (len(BANDS), h, w)).astype(np.float32)
    data[-1] = rng.uniform(-25, -5, (h, w))  # VV in dB
    data[:, :3, :5] = np.nan  # a nodata corner
    stored, scales = store(data, BANDS)
    for d in ("images", "labels", "aoi"):
        (folder / d).mkdir(exist_ok=True)
    write_cog(folder / "images" / f"{obs_id}.tif", stored, grid, BANDS, nodata=NODATA, scales=scales)
    label = np.zeros((h, w), np.uint8)
    feats = []
    for k, (r, c) in enumerate(rng.integers(0, [h - 30, w - 30], (6, 2))):
        label[r : r + 25, c : c + 25] = 1
        x0, y0 = grid.transform * (c, r)
        x1, y1 = grid.transform * (c + 25, r + 25)
        geom = to_crs(box(x0, y1, x1, y0), grid.crs, "EPSG:4326")
        conf = ("high", "medium", "low")[k % 3]
        feats.append(
            {"type": "Feature", "properties": {"class": "mine", "confidence": conf}, "geometry": mapping(geom)}
        )
    label[-4:] = 255
    write_cog(folder / "labels" / f"{obs_id}.tif", label, grid, ["label"], nodata=None)
    doc = {"type": "FeatureCollection", "all_touched": False, "features": feats}
    (folder / "labels" / f"{obs_id}.geojson").write_text(json.dumps(doc))
    aoi = np.zeros((h, w), np.uint8)
    aoi[aoi_rows if aoi_rows is not None else slice(h // 4, 3 * h // 4), w // 8 :] = 1
    write_cog(folder / "aoi" / f"{obs_id}.tif", aoi, grid, ["aoi"], nodata=None)
    return grid


@pytest.fixture
def scenes(tmp_path: Path) -> tuple[Path, list[str]]:
    """Three observations larger than one tile (so windows cross tiles), one without AOI."""
    _write_scene(tmp_path, "a", 300, 520, 0)
    _write_scene(tmp_path, "b", 200, 280, 1)
    _write_scene(tmp_path, "c", 120, 150, 2, aoi_rows=slice(0, 0))
    return tmp_path, ["a", "b", "c"]


def _stats(folder: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    names = read_names(BANDS, INDICES)
    return dataset.band_stats(
        [folder / "images" / f"{k}.tif" for k in ids], [folder / "aoi" / f"{k}.tif" for k in ids], names, BANDS, INDICES
    )


def _cog_scenes(folder: Path, ids: list[str], cache_mb: float = 64) -> list[CogScene]:
    mean, std = _stats(folder, ids)
    names, cache = read_names(BANDS, INDICES), TileCache(cache_mb)
    return [
        CogScene(k, folder / "images" / f"{k}.tif", folder / "labels" / f"{k}.tif", folder / "aoi" / f"{k}.tif",
                 names, BANDS, INDICES, mean, std, CONFIDENCE, cache)
        for k in ids
    ]  # fmt: skip


def _memory_scenes(folder: Path, ids: list[str]) -> list[Scene]:
    """The same observations read whole, as the train stage read them before windows were streamed."""
    names = read_names(BANDS, INDICES)
    mean, std = _stats(folder, ids)
    out = []
    for k in ids:
        image = read_image(folder / "images" / f"{k}.tif", names)
        x = channels(image.data, names, BANDS, INDICES)
        x -= mean[:, None, None]
        x /= std[:, None, None]
        label = read_mask(folder / "labels" / f"{k}.tif", image.grid)
        aoi = read_mask(folder / "aoi" / f"{k}.tif", image.grid) > 0
        weight = confidence_weights(folder / "labels" / f"{k}.geojson", image.grid, CONFIDENCE)
        out.append(Scene(k, x, label, aoi, weight))
    return out


def _epoch(windows: Windows, workers: int, epoch: int, batch: int = 5) -> list[np.ndarray]:
    batches = list(WindowLoader(windows, batch, workers).epoch(epoch))
    return [torch.cat([b[k] for b in batches]).numpy() for k in range(4)]


def test_windows_are_identical_for_0_1_and_2_workers(scenes):
    folder, ids = scenes
    windows = Windows(_cog_scenes(folder, ids), 23, 64, seed=3, stream=TRAIN, augment=True)
    runs = {w: _epoch(windows, w, epoch=2) for w in (0, 1, 2)}
    for w in (1, 2):
        for a, b in zip(runs[0], runs[w]):
            np.testing.assert_array_equal(a, b)
    assert runs[0][0].shape == (23, len(BANDS) + len(INDICES), 64, 64)
    other = _epoch(windows, 0, epoch=3)
    assert not np.array_equal(other[0], runs[0][0])  # another epoch, other windows
    assert (other[3] < 1).any()  # confidence weights reach the windows


def test_centres_lie_in_the_aoi_and_spread_over_scenes(scenes):
    folder, ids = scenes
    sources = _cog_scenes(folder, ids)
    windows = Windows(sources, 400, 64, seed=0, stream=VAL)
    draws = [windows.draw(0, i) for i in range(400)]
    aois = [read_mask(folder / "aoi" / f"{k}.tif") > 0 for k in ids]
    assert all(aois[s][r, c] for s, r, c, _, _ in draws)
    per_scene = np.bincount([s for s, *_ in draws], minlength=3)
    share = np.array([a.sum() for a in aois]) / sum(a.sum() for a in aois)
    assert per_scene[2] == 0  # a scene without AOI is never drawn
    np.testing.assert_allclose(per_scene / 400, share, atol=0.06)  # uniform over AOI pixels
    assert draws == [windows.draw(0, i) for i in range(400)]  # a draw depends on its key only


def test_cog_windows_hold_the_pixels_of_whole_scenes_in_memory(scenes):
    folder, ids = scenes
    cogs, whole = _cog_scenes(folder, ids, cache_mb=0.5), _memory_scenes(folder, ids)
    for cog, mem in zip(cogs, whole):
        h, w = mem.shape
        for r, c in [(0, 0), (h - 1, w - 1), (h // 2, w // 2), (BLOCK_PX - 1, BLOCK_PX), (5, w - 3)]:
            for a, b in zip(cog.window(min(r, h - 1), min(c, w - 1), 96), mem.window(min(r, h - 1), min(c, w - 1), 96)):
                np.testing.assert_array_equal(a, b)
        for (r0, a), (r1, b) in zip(cog.strips(), mem.strips()):
            assert r0 == r1
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)
        x, y = mem.window(h // 2, 7, 96)[:2]  # the in-memory scene crops as `windows.crop` did
        np.testing.assert_array_equal(x, crop(mem.image, h // 2, 7, 96, 0.0))
        np.testing.assert_array_equal(y, crop(mem.label, h // 2, 7, 96, 255))
        assert cog.label_counts() == mem.label_counts()
        np.testing.assert_array_equal(cog.aoi_counts(), mem.aoi_counts())
    ds_cog, ds_mem = Windows(cogs, 12, 64, 1, TRAIN, True), Windows(whole, 12, 64, 1, TRAIN, True)
    for a, b in zip(_epoch(ds_cog, 0, 1), _epoch(ds_mem, 0, 1)):
        np.testing.assert_array_equal(a, b)


def test_no_read_covers_a_whole_scene(scenes, monkeypatch):
    folder, ids = scenes
    sources = _cog_scenes(folder, ids, cache_mb=1)  # about 2 tiles: most windows read again
    windows = Windows(sources, 40, 96, seed=0, stream=TRAIN, augment=True)
    reads: list[tuple[int, int]] = []
    original = rasterio.io.DatasetReader.read

    def counting(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        reads.append(out.shape[-2:])
        return out

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting)
    _epoch(windows, 0, 1)
    assert len(reads) > 40  # windows were read from the files
    assert max(h * w for h, w in reads) <= BLOCK_PX * BLOCK_PX  # a tile at most, never a scene
    for s in sources:
        assert s.cache._bytes <= s.cache.max_bytes


def test_band_stats_stream_equal_those_of_the_scenes_in_memory(scenes, monkeypatch):
    folder, ids = scenes
    monkeypatch.setattr(dataset, "STRIP_PX", 3000)  # many strips of ~10 rows
    mean, std = _stats(folder, ids)
    names = read_names(BANDS, INDICES)
    units, aois = [], []
    for k in ids:
        image = read_image(folder / "images" / f"{k}.tif", names)
        units.append(channels(image.data, names, BANDS, INDICES))
        aois.append(read_mask(folder / "aoi" / f"{k}.tif") > 0)
    want_mean, want_std = training.band_stats(units, aois)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5)
    np.testing.assert_allclose(std, want_std, rtol=1e-5)


def test_tile_cache_drops_the_least_recently_used():
    cache = TileCache(max_mb=3 / 1024)  # 3 KiB
    tile = lambda v: (np.full(1024, v, np.uint8),)  # noqa: E731 - 1 KiB
    for k in range(3):
        cache.get(("s", k, 0), lambda k=k: tile(k))
    cache.get(("s", 0, 0), lambda: tile(99))  # held: not loaded again, now the most recent
    cache.get(("s", 3, 0), lambda: tile(3))
    assert [k[1] for k in cache._tiles] == [2, 0, 3] and cache._bytes == 3072
    assert cache.get(("s", 0, 0), lambda: tile(99))[0][0] == 0


def test_streamed_scores_equal_whole_arrays(scenes):
    folder, ids = scenes
    pred = folder / "pred"
    pred.mkdir()
    for k in ids:
        img = read_image(folder / "images" / f"{k}.tif")
        q = np.random.default_rng(0).integers(0, 256, img.grid.height * img.grid.width, dtype=np.uint8)
        write_cog(pred / f"{k}.tif", q.reshape(img.grid.height, img.grid.width), img.grid, ["p"], nodata=None)
    for k in ids:
        whole, streamed = Histogram(), Histogram()
        s = read_scored(k, pred, folder / "images", folder / "labels", folder / "aoi")
        whole.add(s.q, s.label == 1, s.aoi & s.known)
        add_scored(streamed, k, pred, folder / "images", folder / "labels", folder / "aoi")
        np.testing.assert_array_equal(whole.pos, streamed.pos)
        np.testing.assert_array_equal(whole.neg, streamed.neg)


def test_fit_on_cog_scenes_is_the_same_for_any_number_of_workers(scenes):
    from sandmine import models
    from sandmine.core.config import TrainParams

    folder, ids = scenes
    torch.set_num_threads(1)
    states = []
    for workers in (0, 2):
        torch.manual_seed(0)
        model = models.build("resnet18", "linear", [*BANDS, *INDICES])
        tp = TrainParams(window_px=32, batch_size=4, epochs=2, windows_per_epoch=8, val_windows=4, threads=1,
                         workers=workers)  # fmt: skip
        model, summary = training.fit(model, _cog_scenes(folder, ids[:2]), _cog_scenes(folder, ids[1:2]), tp)
        states.append((model.state_dict(), summary["best_val_ap"]))
    assert states[0][1] == states[1][1]
    for k, v in states[0][0].items():
        assert torch.equal(v, states[1][0][k]), k
