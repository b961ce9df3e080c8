"""Stitching: a translation-equivariant model gives the whole-raster answer away from borders,
for both blends, in memory, streamed from a file, and tile by tile."""

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from sandmine.core.raster import read_image, write_cog
from sandmine.prediction import Stitch, blend_weights, predict, predict_file, predict_rows


def _conv_model(k: int, channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Conv2d(channels, 1, k, padding=k // 2)
    return m.eval()


def _whole(model: nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(image)[None]))[0, 0].numpy()


@pytest.mark.parametrize("blend", ["mean", "gaussian"])
def test_pointwise_model_stitched_equals_whole_pass(rng, blend):
    image = rng.standard_normal((3, 150, 170)).astype(np.float32)
    model = _conv_model(1)
    stitched = predict(model, image, Stitch(64, 32, 16, 4, blend))
    np.testing.assert_allclose(stitched, _whole(model, image), atol=1e-6)


@pytest.mark.parametrize("blend", ["mean", "gaussian"])
def test_conv_model_equal_away_from_window_edges(rng, blend):
    # a 5x5 conv sees 2 px beyond each pixel: the discarded 16 px hide window-edge effects
    image = rng.standard_normal((3, 140, 140)).astype(np.float32)
    model = _conv_model(5)
    stitched = predict(model, image, Stitch(64, 32, 16, 3, blend))
    np.testing.assert_allclose(stitched[2:-2, 2:-2], _whole(model, image)[2:-2, 2:-2], atol=1e-6)


def test_without_discard_window_edges_show():
    # the same model with no discard differs near window edges: the discard is what hides them
    image = np.random.default_rng(1).standard_normal((3, 140, 140)).astype(np.float32)
    model = _conv_model(5)
    stitched = predict(model, image, Stitch(64, 32, 0, 3, "mean"))
    assert np.abs(stitched[2:-2, 2:-2] - _whole(model, image)[2:-2, 2:-2]).max() > 1e-3


def test_raster_smaller_than_window(rng):
    image = rng.standard_normal((3, 20, 30)).astype(np.float32)
    out = predict(_conv_model(1), image, Stitch(64, 32, 8, 2))
    assert out.shape == (20, 30)
    assert np.isfinite(out).all()


def test_gaussian_weights_trust_the_centre():
    w = blend_weights(64, "gaussian")
    assert w.shape == (64, 64) and w.min() > 0
    assert w[31, 31] == w.max() and w[31, 31] > 10 * w[31, 8]
    assert np.array_equal(w, w.T) and np.array_equal(w, w[::-1, ::-1])
    with pytest.raises(ValueError, match="valid"):
        blend_weights(64, "median")


def test_rows_stream_in_order_with_bounded_reads(rng):
    image = rng.standard_normal((3, 300, 100)).astype(np.float32)
    reads = []

    def read(a, b, c0, c1):
        reads.append((a, b))
        return image[:, a:b, c0:c1]

    s = Stitch(64, 48, 8, 4)
    blocks = list(predict_rows(_conv_model(3), read, 300, 100, s))
    firsts = [r for r, _ in blocks]
    assert firsts == sorted(firsts) and firsts[0] == 0
    assert sum(b.shape[0] for _, b in blocks) == 300  # every row exactly once
    assert all(b - a == 64 for a, b in reads)  # one strip of windows at a time


def test_wide_rasters_are_read_in_column_chunks(rng, monkeypatch):
    import sandmine.prediction as prediction

    monkeypatch.setattr(prediction, "CHUNK_PX", 128)  # two 64 px windows per read
    image = rng.standard_normal((3, 100, 400)).astype(np.float32)
    widths = []

    def read(a, b, c0, c1):
        widths.append(c1 - c0)
        return image[:, a:b, c0:c1]

    model, s = _conv_model(3), Stitch(64, 48, 8, 2, "gaussian")
    got = np.concatenate([blk for _, blk in predict_rows(model, read, 100, 400, s)])
    assert max(widths) <= 64 + 48 and min(widths) >= 64  # never the whole width
    assert np.array_equal(got, predict(model, image, s))  # same answer as one read per strip
    widths.clear()  # a batch larger than a chunk widens the reads to one batch of windows, no more
    got = np.concatenate([blk for _, blk in predict_rows(model, read, 100, 400, Stitch(64, 48, 8, 4, "gaussian"))])
    assert max(widths) <= 64 + 3 * 48 < 400 and np.array_equal(got, predict(model, image, s))


@pytest.mark.parametrize("rows", [(0, 97), (97, 211), (211, 300), (40, 41)])
def test_row_range_equals_same_rows_of_whole_pass(rng, rows):
    image = rng.standard_normal((3, 300, 120)).astype(np.float32)
    model, s = _conv_model(7), Stitch(64, 40, 12, 4, "gaussian")
    whole = predict(model, image, s)
    part = np.concatenate(
        [b for _, b in predict_rows(model, lambda a, b, c0, c1: image[:, a:b, c0:c1], 300, 120, s, *rows)]
    )
    assert np.array_equal(part, whole[rows[0] : rows[1]])  # same windows, same order: bitwise equal


def _image_file(tmp_path, grid_fn, rng, h, w):
    grid = grid_fn(h, w)
    data = rng.uniform(0.0, 0.3, (3, h, w)).astype(np.float32)
    data[:, 5:9, 10:20] = np.nan
    path = tmp_path / "img.tif"
    write_cog(path, data, grid, ["B2", "B3", "B4"], {"source": "synthetic", "date": "2026-01-01"})
    return path, grid


@pytest.fixture
def grid_fn():
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from sandmine.core.raster import Grid

    return lambda h, w: Grid(CRS.from_epsg(32644), from_origin(500000, 3000000, 10, 10), h, w)


def test_file_streaming_equals_in_memory(tmp_path, rng, grid_fn):
    src, grid = _image_file(tmp_path, grid_fn, rng, 260, 190)
    ckpt = {"bands": ["B2", "B3", "B4"], "mean": [0.1, 0.1, 0.1], "std": [0.2, 0.2, 0.2]}
    model, s = _conv_model(3), Stitch(64, 48, 8, 4)
    predict_file(model, ckpt, src, tmp_path / "p.tif", s)
    with rasterio.open(tmp_path / "p.tif") as ds:
        got = ds.read(1)
        assert ds.crs == grid.crs and ds.transform == grid.transform
        assert ds.tags()["source"] == "synthetic" and ds.descriptions == ("mine_probability",)
        assert ds.profile["tiled"] and ds.profile["blockxsize"] == 256
    from sandmine.core.metrics import quantise
    from sandmine.prediction import normalise

    raw = read_image(src, ckpt["bands"]).data
    x = normalise(raw, ckpt["bands"], np.full(3, 0.1, np.float32), np.full(3, 0.2, np.float32))
    want = predict(model, x, s)
    want[np.isnan(raw).any(axis=0)] = 0
    assert np.array_equal(got, quantise(want))
    assert (got[5:9, 10:20] == 0).all()
    assert not list(tmp_path.glob(".tmp-*"))


def test_file_tiles_reassemble_the_whole(tmp_path, rng, grid_fn):
    src, grid = _image_file(tmp_path, grid_fn, rng, 300, 140)
    ckpt = {"bands": ["B2", "B3", "B4"], "mean": [0.0] * 3, "std": [1.0] * 3}
    model, s = _conv_model(5), Stitch(64, 48, 8, 4)
    predict_file(model, ckpt, src, tmp_path / "whole.tif", s)
    parts = []
    for i, rows in enumerate([(0, 128), (128, 256), (256, 300)]):
        predict_file(model, ckpt, src, tmp_path / f"t{i}.tif", s, rows=rows)
        with rasterio.open(tmp_path / f"t{i}.tif") as ds:
            assert ds.transform.f == grid.transform.f - 10 * rows[0]
            parts.append(ds.read(1))
    with rasterio.open(tmp_path / "whole.tif") as ds:
        assert np.array_equal(np.concatenate(parts), ds.read(1))


def _original_predict_rows(model, read, height, width, s, row0=0, row1=None, chunk_px=2048):
    """predict_rows as it was at 30cccf7 (host accumulators, numpy blending), kept verbatim but for the
    prefetch thread: the reference the CPU path must equal bit for bit."""
    from sandmine.core.windows import keep_region, starts

    row1 = height if row1 is None else row1
    weights = blend_weights(s.window, s.blend)
    needed = [r for r in starts(height, s.window, s.stride) if r < row1 and r + s.window > row0]
    cols = starts(width, s.window, s.stride)
    per_chunk = max(1, chunk_px // s.window, s.batch_size)
    chunks = [cols[i : i + per_chunk] for i in range(0, len(cols), per_chunk)]
    plan = [(k, r, chunk) for k, r in enumerate(needed) for chunk in chunks]
    model.eval()
    lo = needed[0]
    total = np.zeros((0, width), np.float32)
    wsum = np.zeros((0, width), np.float32)
    with torch.no_grad():
        for k, r, chunk in plan:
            grow = r + s.window - lo - total.shape[0]
            if grow > 0:
                total = np.concatenate([total, np.zeros((grow, width), np.float32)])
                wsum = np.concatenate([wsum, np.zeros((grow, width), np.float32)])
            x = read(r, r + s.window, chunk[0], chunk[-1] + s.window)
            c0 = chunk[0]
            for b in range(0, len(chunk), s.batch_size):
                batch = chunk[b : b + s.batch_size]
                xb = torch.from_numpy(np.stack([x[:, :, c - c0 : c - c0 + s.window] for c in batch]))
                prob = torch.sigmoid(model(xb).float())[:, 0].cpu().numpy()
                for c, p in zip(batch, prob):
                    rs, cs = keep_region(r, c, s.window, height, width, s.discard)
                    wt = weights[rs, cs]
                    out_r = slice(r - lo + rs.start, r - lo + rs.stop)
                    out_c = slice(c + cs.start, c + cs.stop)
                    total[out_r, out_c] += p[rs, cs] * wt
                    wsum[out_r, out_c] += wt
            if chunk is not chunks[-1]:
                continue
            done = needed[k + 1] if k + 1 < len(needed) else min(row1, height)
            done = min(done, r + s.window)
            a, b_ = max(lo, row0), min(done, row1)
            if b_ > a:
                yield a, total[a - lo : b_ - lo] / np.maximum(wsum[a - lo : b_ - lo], 1e-12)
            total, wsum, lo = total[done - lo :], wsum[done - lo :], done


@pytest.mark.parametrize("on_device", [None, True], ids=["host", "device-path-on-cpu"])
@pytest.mark.parametrize("blend", ["mean", "gaussian"])
@pytest.mark.parametrize("rows", [None, (37, 151)], ids=["whole", "row-tile"])
def test_predict_rows_cpu_is_bitwise_the_original_algorithm(rng, monkeypatch, on_device, blend, rows):
    import sandmine.prediction as prediction

    # windows of 64 px at stride 40 over 230 x 330 px: strips overlap, reads come in column chunks of
    # 128 px (2 windows) that windows straddle, batches of 3 do not divide the chunks, the last window is flush
    monkeypatch.setattr(prediction, "CHUNK_PX", 128)
    image = rng.standard_normal((3, 230, 330)).astype(np.float32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1)).eval()
    s = Stitch(64, 40, 12, 3, blend)

    def read(a, b, c0, c1):
        return image[:, a:b, c0:c1]

    rng_rows = () if rows is None else rows
    want = list(_original_predict_rows(model, read, 230, 330, s, *rng_rows, chunk_px=128))
    got = list(predict_rows(model, read, 230, 330, s, *rng_rows, on_device=on_device))
    assert [r for r, _ in got] == [r for r, _ in want] and len(want) > 2
    for (_, g), (_, w) in zip(got, want):
        assert g.dtype == np.float32 and g.tobytes() == w.tobytes()  # byte for byte


def test_auto_batch_is_one_on_the_cpu(rng):
    from sandmine.prediction import auto_batch

    image = rng.standard_normal((3, 100, 300)).astype(np.float32)
    model = _conv_model(3)
    assert auto_batch(model, torch.from_numpy(image[:, :64, :64]), "32") == 1
    s = Stitch(64, 48, 8, "auto")
    assert np.array_equal(predict(model, image, s), predict(model, image, Stitch(64, 48, 8, 1)))


def test_largest_fitting_doubles_until_out_of_memory():
    from sandmine.prediction import largest_fitting

    tried, released = [], []

    def run(n):
        tried.append(n)
        if n > 20:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    assert largest_fitting(run, 128, lambda: released.append(1)) == 16
    assert tried == [1, 2, 4, 8, 16, 32] and len(released) == len(tried)  # memory freed after every try
    tried.clear()
    assert largest_fitting(run, 8) == 8 and tried == [1, 2, 4, 8]  # never beyond the cap
    with pytest.raises(RuntimeError, match="other"):  # only running out of memory ends the search quietly
        largest_fitting(lambda n: (_ for _ in ()).throw(RuntimeError("other")), 8)
