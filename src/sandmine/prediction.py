"""Stitched sliding-window prediction, streamed a strip of windows at a time.

Windows of `window` px step by `stride`; `discard` px at each window edge are dropped (kept
where the window touches the raster edge) and the kept parts of overlapping windows are
blended, by a plain mean or with Gaussian weights that trust window centres most. Rows are
finished as soon as no later window can touch them, so memory holds one strip of windows
(`window` rows × raster width), whatever the raster's height; a row range of a large raster
can be computed on its own (a tile for a Dask worker) and is identical to the same rows of a
whole-raster pass.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
import torch
from rasterio.transform import Affine
from torch import nn
from tqdm import tqdm

from sandmine.core.bands import naming_advice, normalise, read_names
from sandmine.core.errors import SandmineError
from sandmine.core.metrics import quantise
from sandmine.core.raster import (
    CogWriter,
    Grid,
    ImageReader,
    band_names,
    check_metric_grid,
    ground_pixel_m,
    warp_command,
)
from sandmine.core.windows import keep_region, starts
from sandmine.device import autocast, device_of, to_device

BLENDS = ("mean", "gaussian")
log = logging.getLogger(__name__)
__all__ = ["BLENDS", "Stitch", "auto_batch", "blend_weights", "normalise", "predict", "predict_file", "predict_rows"]


@dataclass(frozen=True)
class Stitch:
    """How windows are laid out, batched and blended; `precision` "bf16" runs the model under bf16 autocast.

    `batch_size` is a number of windows, or "auto": the largest that fits on a GPU (`auto_batch`), 1 on the CPU.
    """

    window: int
    stride: int
    discard: int
    batch_size: int | str
    blend: str = "gaussian"
    precision: str = "32"


def blend_weights(window: int, blend: str) -> np.ndarray:
    """(window, window) float32 weights of one window's pixels when overlaps are averaged."""
    if blend == "mean":
        return np.ones((window, window), np.float32)
    if blend == "gaussian":  # sigma = window / 8 as in nnU-Net; floored so no kept pixel has zero weight
        d = np.arange(window, dtype=np.float64) - (window - 1) / 2
        g = np.exp(-(d**2) / (2 * (window / 8) ** 2))
        w = np.outer(g, g)
        return np.maximum(w / w.max(), 1e-3).astype(np.float32)
    raise ValueError(f"unknown blend {blend!r}; valid: {BLENDS}")


Reader = Callable[[int, int, int, int], np.ndarray]
CHUNK_PX = 2048  # columns read at a time (or one batch of windows): memory does not grow with the width either
AUTO_MAX = 128  # batch_size auto tries 1, 2, 4, ... up to this many windows
_auto_cache: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, int, str], int]] = weakref.WeakKeyDictionary()


@torch.no_grad()
def auto_batch(model: nn.Module, sample: torch.Tensor, precision: str) -> int:
    """The largest batch of windows like `sample` ((C, window, window)) that the model's GPU runs: 1, 2, 4, ...
    up to AUTO_MAX, until torch.cuda.OutOfMemoryError; 1 on the CPU. Remembered per model, window and precision."""
    device = device_of(model)
    if device.type != "cuda":
        return 1
    key = (sample.shape[0], sample.shape[-1], precision)
    known = _auto_cache.setdefault(model, {})
    if key in known:
        return known[key]
    model.eval()

    def run(b: int) -> None:
        x = sample.to(device)[None].expand(b, *sample.shape).contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            model(x)
        torch.cuda.synchronize(device)

    fits = largest_fitting(run, AUTO_MAX, torch.cuda.empty_cache)
    log.info("predict.batch_size auto: %d windows of %d px on %s", fits, sample.shape[-1], device)
    known[key] = fits
    return fits


def largest_fitting(run: Callable[[int], None], top: int, release: Callable[[], None] = lambda: None) -> int:
    """The largest of 1, 2, 4, ... <= `top` for which `run(n)` does not raise torch.cuda.OutOfMemoryError
    (1 even when 1 does not fit: the error then comes where the work is done). `release` runs after each try."""
    fits, n = 1, 1
    while n <= top:
        try:
            run(n)
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            release()
        fits, n = n, n * 2
    return fits


class _HostStrip:
    """Accumulators of one strip of rows in host memory (numpy): probabilities copied per batch."""

    def __init__(self, weights: np.ndarray, width: int, device: torch.device) -> None:
        self.weights, self.width, self.device = weights, width, device
        self.total = np.zeros((0, width), np.float32)
        self.wsum = np.zeros((0, width), np.float32)

    def grow(self, rows: int) -> None:
        """Hold at least `rows` rows."""
        grow = rows - self.total.shape[0]
        if grow > 0:
            self.total = np.concatenate([self.total, np.zeros((grow, self.width), np.float32)])
            self.wsum = np.concatenate([self.wsum, np.zeros((grow, self.width), np.float32)])

    def stage(self, x: np.ndarray) -> np.ndarray:
        """A read block, ready for `windows` (in the reading thread)."""
        return x

    def windows(self, x: np.ndarray, offsets: list[int], window: int) -> torch.Tensor:
        """A batch of windows of `x` starting at these column offsets, on the model's device."""
        return to_device(np.stack([x[:, :, o : o + window] for o in offsets]), self.device)

    def add(self, logits: torch.Tensor, places: list[tuple[slice, slice, slice, slice]]) -> None:
        """Blend a batch: window i's kept part (rs, cs) goes to accumulator rows and columns (out_r, out_c)."""
        prob = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
        for p, (out_r, out_c, rs, cs) in zip(prob, places):
            wt = self.weights[rs, cs]
            self.total[out_r, out_c] += p[rs, cs] * wt
            self.wsum[out_r, out_c] += wt

    def rows(self, a: int, b: int) -> np.ndarray:
        """Blended probabilities of accumulator rows [a, b)."""
        return self.total[a:b] / np.maximum(self.wsum[a:b], 1e-12)

    def drop(self, n: int) -> None:
        """Forget the first `n` rows (finished)."""
        self.total, self.wsum = self.total[n:], self.wsum[n:]


class _DeviceStrip(_HostStrip):
    """Accumulators on the model's device: windows cut from a block copied there once (from pinned memory, on a
    side stream, in the reading thread), blended there, one device-to-host copy per finished strip.

    The same float32 operations in the same order as `_HostStrip`: on the CPU the result is bit for bit the same.
    """

    def __init__(self, weights: np.ndarray, width: int, device: torch.device) -> None:
        super().__init__(weights, width, device)
        self.weights_t = torch.from_numpy(weights).to(device)
        self.total_t = torch.zeros((0, width), dtype=torch.float32, device=device)
        self.wsum_t = torch.zeros((0, width), dtype=torch.float32, device=device)
        self.copier = torch.cuda.Stream(device) if device.type == "cuda" else None

    def grow(self, rows: int) -> None:
        grow = rows - self.total_t.shape[0]
        if grow > 0:
            zeros = torch.zeros((grow, self.width), dtype=torch.float32, device=self.device)
            self.total_t, self.wsum_t = torch.cat([self.total_t, zeros]), torch.cat([self.wsum_t, zeros])

    def stage(self, x: np.ndarray) -> torch.Tensor:  # type: ignore[override]
        if self.copier is None:
            return torch.from_numpy(x).to(self.device)
        pinned = torch.empty(x.shape, dtype=torch.float32, pin_memory=True)
        pinned.copy_(torch.from_numpy(x))
        with torch.cuda.stream(self.copier):
            t = pinned.to(self.device, non_blocking=True)
        self.copier.synchronize()  # this thread waits, the model's stream does not
        return t

    def windows(self, x: torch.Tensor, offsets: list[int], window: int) -> torch.Tensor:  # type: ignore[override]
        if self.copier is not None:
            x.record_stream(torch.cuda.current_stream(self.device))  # made on the side stream, used on this one
        xb = torch.stack([x[:, :, o : o + window] for o in offsets])
        return xb.contiguous(memory_format=torch.channels_last) if self.copier is not None else xb

    def add(self, logits: torch.Tensor, places: list[tuple[slice, slice, slice, slice]]) -> None:
        prob = torch.sigmoid(logits.float())[:, 0]
        for p, (out_r, out_c, rs, cs) in zip(prob, places):
            wt = self.weights_t[rs, cs]
            self.total_t[out_r, out_c] += p[rs, cs] * wt
            self.wsum_t[out_r, out_c] += wt

    def rows(self, a: int, b: int) -> np.ndarray:
        return (self.total_t[a:b] / self.wsum_t[a:b].clamp_min(1e-12)).cpu().numpy()

    def drop(self, n: int) -> None:
        self.total_t, self.wsum_t = self.total_t[n:], self.wsum_t[n:]


@torch.no_grad()
def predict_rows(
    model: nn.Module,
    read: Reader,
    height: int,
    width: int,
    s: Stitch,
    row0: int = 0,
    row1: int | None = None,
    on_device: bool | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, (n, width) float32 probabilities) for rows [row0, row1), top to bottom.

    Args:
        model: (B, C, window, window) -> (B, 1, window, window) logits; runs on its own device.
        read: read(r0, r1, c0, c1) -> (C, r1 - r0, c1 - c0) normalised float32 input.
        height, width: raster size; both must be at least `s.window` (see `predict` for smaller).
        on_device: blend on the model's device (None: when that is not the CPU). True on the CPU runs the
            device path there, with the same result bit for bit.
    """
    row1 = height if row1 is None else row1
    if height < s.window or width < s.window:
        raise ValueError(f"raster {height}x{width} is smaller than one window ({s.window} px)")
    weights = blend_weights(s.window, s.blend)
    needed = [r for r in starts(height, s.window, s.stride) if r < row1 and r + s.window > row0]
    cols = starts(width, s.window, s.stride)
    device = device_of(model)
    model.eval()
    if s.batch_size == "auto":
        sample = torch.from_numpy(read(needed[0], needed[0] + s.window, 0, s.window))
        batch = min(auto_batch(model, sample, s.precision), len(cols))
    else:
        batch = int(s.batch_size)
    per_chunk = max(1, CHUNK_PX // s.window, batch)  # a batch of windows comes from one read
    chunks = [cols[i : i + per_chunk] for i in range(0, len(cols), per_chunk)]
    plan = [(k, r, chunk) for k, r in enumerate(needed) for chunk in chunks]
    strip = (_DeviceStrip if (device.type != "cpu" if on_device is None else on_device) else _HostStrip)(
        weights, width, device
    )

    def fetch(i: int) -> np.ndarray | torch.Tensor:
        _, r, chunk = plan[i]
        return strip.stage(read(r, r + s.window, chunk[0], chunk[-1] + s.window))

    lo = needed[0]  # first row held in the accumulators
    pool = ThreadPoolExecutor(max_workers=1)  # reads (and copies to the device) the next chunk while the model runs
    try:
        ahead = pool.submit(fetch, 0)
        for i, (k, r, chunk) in enumerate(plan):
            strip.grow(r + s.window - lo)
            x = ahead.result()
            if i + 1 < len(plan):
                ahead = pool.submit(fetch, i + 1)
            c0 = chunk[0]
            for b in range(0, len(chunk), batch):
                batch_cols = chunk[b : b + batch]
                xb = strip.windows(x, [c - c0 for c in batch_cols], s.window)  # type: ignore[arg-type]
                with autocast(device, s.precision):
                    logits = model(xb)
                places = []
                for c in batch_cols:
                    rs, cs = keep_region(r, c, s.window, height, width, s.discard)
                    out_r, out_c = slice(r - lo + rs.start, r - lo + rs.stop), slice(c + cs.start, c + cs.stop)
                    places.append((out_r, out_c, rs, cs))
                strip.add(logits, places)
            if chunk is not chunks[-1]:
                continue
            done = needed[k + 1] if k + 1 < len(needed) else min(row1, height)  # no later window reaches above
            done = min(done, r + s.window)
            a, b_ = max(lo, row0), min(done, row1)
            if b_ > a:
                yield a, strip.rows(a - lo, b_ - lo)
            strip.drop(done - lo)
            lo = done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def predict(model: nn.Module, image: np.ndarray, s: Stitch, on_device: bool | None = None) -> np.ndarray:
    """(H, W) float32 probabilities for an in-memory (C, H, W) normalised image of any size (`on_device`:
    see `predict_rows`)."""
    c, h, w = image.shape
    ph, pw = max(0, s.window - h), max(0, s.window - w)
    if ph or pw:  # smaller than one window: pad, predict, crop
        padded = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")
        return predict(model, padded, s, on_device)[:h, :w]
    out = np.empty((h, w), np.float32)
    for r, block in predict_rows(model, lambda a, b, c0, c1: image[:, a:b, c0:c1], h, w, s, on_device=on_device):
        out[r : r + block.shape[0]] = block
    return out


def predict_file(
    model: nn.Module,
    ckpt: dict,
    src: Path,
    dst: Path,
    s: Stitch,
    tags: dict[str, str] | None = None,
    rows: tuple[int, int] | None = None,
    progress: bool = False,
) -> None:
    """Stream the probabilities of image `src` into the uint8 COG `dst` (value / 255).

    Nodata pixels (NaN in any model band) get probability 0. With `rows`, only that row range
    is predicted and `dst` is a COG of those rows (a tile of a larger raster).
    """
    # GDAL's block cache defaults to 5 % of RAM; strips are read once, so a small cache will do
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        _predict_file(model, ckpt, src, dst, s, tags, rows, progress)


GDAL_CACHE_MB = 128


def _predict_file(
    model: nn.Module,
    ckpt: dict,
    src: Path,
    dst: Path,
    s: Stitch,
    tags: dict[str, str] | None,
    rows: tuple[int, int] | None,
    progress: bool,
) -> None:
    bands, indices = ckpt["bands"], ckpt.get("indices", [])
    names = read_names(bands, indices)
    mean, std = np.array(ckpt["mean"], np.float32), np.array(ckpt["std"], np.float32)

    def prepare(raw: np.ndarray) -> np.ndarray:
        return normalise(raw, bands, mean, std, inplace=True, names=names, indices=indices)

    try:  # a clear error before anything is written
        with rasterio.open(src) as probe:
            descs = band_names(probe.descriptions or ())
    except rasterio.errors.RasterioIOError:
        descs = []  # ImageReader below names the problem
    missing = [n for n in names if n not in descs]
    if descs and all(descs) and missing:
        raise SandmineError(
            f"the model was trained on bands {names}; the image lacks {missing} (it has {descs})",
            str(src),
            f"predict with a model trained on this image's bands, or export the missing bands{naming_advice(descs)}",
        )
    with ImageReader(src, names) as reader:
        g = reader.grid
        check_grid_for_model(g, ckpt, str(src))
        row0, row1 = rows if rows is not None else (0, g.height)
        out_grid = g if rows is None else _row_grid(g, row0, row1)
        all_tags = {"source": reader.tags.get("source", ""), "date": reader.tags.get("date", "")}
        all_tags.update({"scale": "probability = value / 255", **(tags or {})})

        invalid: dict[int, np.ndarray] = {}  # rows read but not yet written: nodata masks

        def read(a: int, b: int, c0: int, c1: int) -> np.ndarray:
            raw = reader.read_rows(a, b, c0, c1)
            for i, m in enumerate(np.isnan(raw).any(axis=0)):
                row = invalid.setdefault(a + i, np.zeros(g.width, bool))
                row[c0:c1] |= m
            return prepare(raw)  # raw is ours: normalised in place when there are no index channels

        with CogWriter(dst, out_grid, "uint8", "mine_probability", all_tags, resampling="average") as out:
            if g.height < s.window or g.width < s.window:
                raw = reader.read_rows(0, g.height)
                prob = predict(model, prepare(raw.copy()), s)
                prob[np.isnan(raw).any(axis=0)] = 0.0
                out.write_rows(0, quantise(prob[row0:row1]))
                return
            bar = tqdm(total=row1 - row0, desc=Path(src).name, unit="row", disable=not progress)
            for r, block in predict_rows(model, read, g.height, g.width, s, row0, row1):
                bar.update(block.shape[0])
                block[np.stack([invalid.pop(r + i) for i in range(block.shape[0])])] = 0.0
                for k in [k for k in list(invalid) if k < r]:  # list(): the reader thread adds rows
                    invalid.pop(k, None)
                out.write_rows(r - row0, quantise(block))


TRAINING_RES_M = 10.0  # what a checkpoint without `res_m` was trained on (every source exports 10 m)
RES_REFUSED = 1.5  # pixels this many times coarser or finer than the model's are refused
RES_WARNED = 1.1  # and this many times, a warning


def check_grid_for_model(grid: Grid, ckpt: dict, where: str) -> None:
    """Refuse an image the model cannot map: a CRS whose pixel areas are not ground areas (degrees,
    feet, Web Mercator), or pixels much coarser or finer than those the model was trained on.

    Raises:
        SandmineError: saying what the model expects and the gdalwarp command that makes it.
    """
    check_metric_grid(grid, where)
    want = float(ckpt.get("res_m") or TRAINING_RES_M)
    gx, gy = ground_pixel_m(grid)
    worst = max(gx / want, want / gx, gy / want, want / gy)
    said = f"the image's pixels are {gx:.1f} × {gy:.1f} m on the ground; the model was trained on {want:g} m pixels"
    if worst > RES_REFUSED:
        raise SandmineError(
            f"{said}: a mine would cover {want / gx:.2g} times as many pixels across as the model learnt, and the "
            "probabilities would mean nothing",
            where,
            f"resample the image to {want:g} m first: {warp_command(grid, where, want)}",
        )
    if worst > RES_WARNED:
        log.warning("%s: %s; predicting anyway (within a factor %g)", where, said, RES_REFUSED)


def _row_grid(g: Grid, row0: int, row1: int) -> Grid:
    return Grid(g.crs, g.transform @ Affine.translation(0, row0), row1 - row0, g.width)
