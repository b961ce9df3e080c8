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

log = logging.getLogger(__name__)

BLENDS = ("mean", "gaussian")
__all__ = ["BLENDS", "Stitch", "blend_weights", "normalise", "predict", "predict_file", "predict_rows"]


@dataclass(frozen=True)
class Stitch:
    """How windows are laid out, batched and blended; `precision` "bf16" runs the model under bf16 autocast."""

    window: int
    stride: int
    discard: int
    batch_size: int
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


@torch.no_grad()
def predict_rows(
    model: nn.Module, read: Reader, height: int, width: int, s: Stitch, row0: int = 0, row1: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, (n, width) float32 probabilities) for rows [row0, row1), top to bottom.

    Args:
        model: (B, C, window, window) -> (B, 1, window, window) logits; runs on its own device.
        read: read(r0, r1, c0, c1) -> (C, r1 - r0, c1 - c0) normalised float32 input.
        height, width: raster size; both must be at least `s.window` (see `predict` for smaller).
    """
    row1 = height if row1 is None else row1
    if height < s.window or width < s.window:
        raise ValueError(f"raster {height}x{width} is smaller than one window ({s.window} px)")
    weights = blend_weights(s.window, s.blend)
    needed = [r for r in starts(height, s.window, s.stride) if r < row1 and r + s.window > row0]
    cols = starts(width, s.window, s.stride)
    per_chunk = max(1, CHUNK_PX // s.window, s.batch_size)  # a batch of windows comes from one read
    chunks = [cols[i : i + per_chunk] for i in range(0, len(cols), per_chunk)]
    plan = [(k, r, chunk) for k, r in enumerate(needed) for chunk in chunks]

    def fetch(i: int) -> np.ndarray:
        _, r, chunk = plan[i]
        return read(r, r + s.window, chunk[0], chunk[-1] + s.window)

    model.eval()
    device = device_of(model)
    lo = needed[0]  # first row held in the accumulators
    total = np.zeros((0, width), np.float32)
    wsum = np.zeros((0, width), np.float32)
    pool = ThreadPoolExecutor(max_workers=1)  # reads the next chunk while the model runs
    try:
        ahead = pool.submit(fetch, 0)
        for i, (k, r, chunk) in enumerate(plan):
            grow = r + s.window - lo - total.shape[0]
            if grow > 0:
                total = np.concatenate([total, np.zeros((grow, width), np.float32)])
                wsum = np.concatenate([wsum, np.zeros((grow, width), np.float32)])
            x = ahead.result()
            if i + 1 < len(plan):
                ahead = pool.submit(fetch, i + 1)
            c0 = chunk[0]
            for b in range(0, len(chunk), s.batch_size):
                batch = chunk[b : b + s.batch_size]
                xb = to_device(np.stack([x[:, :, c - c0 : c - c0 + s.window] for c in batch]), device)
                with autocast(device, s.precision):
                    logits = model(xb)
                prob = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
                for c, p in zip(batch, prob):
                    rs, cs = keep_region(r, c, s.window, height, width, s.discard)
                    wt = weights[rs, cs]
                    out_r = slice(r - lo + rs.start, r - lo + rs.stop)
                    out_c = slice(c + cs.start, c + cs.stop)
                    total[out_r, out_c] += p[rs, cs] * wt
                    wsum[out_r, out_c] += wt
            if chunk is not chunks[-1]:
                continue
            done = needed[k + 1] if k + 1 < len(needed) else min(row1, height)  # no later window reaches above
            done = min(done, r + s.window)
            a, b_ = max(lo, row0), min(done, row1)
            if b_ > a:
                yield a, total[a - lo : b_ - lo] / np.maximum(wsum[a - lo : b_ - lo], 1e-12)
            total, wsum, lo = total[done - lo :], wsum[done - lo :], done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def predict(model: nn.Module, image: np.ndarray, s: Stitch) -> np.ndarray:
    """(H, W) float32 probabilities for an in-memory (C, H, W) normalised image of any size."""
    c, h, w = image.shape
    ph, pw = max(0, s.window - h), max(0, s.window - w)
    if ph or pw:  # smaller than one window: pad, predict, crop
        padded = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")
        return predict(model, padded, s)[:h, :w]
    out = np.empty((h, w), np.float32)
    for r, block in predict_rows(model, lambda a, b, c0, c1: image[:, a:b, c0:c1], h, w, s):
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
