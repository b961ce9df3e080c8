"""Inference throughput (km²/s) on this machine, in one run, for the default model:

- limit: the model alone over the raster in non-overlapping tiles of several sizes (input
  already in memory, no stitching, no I/O); the fastest tile size is the limit;
- sandmine: `predict_file` streaming COG to COG with the params' stitching (window/stride/discard),
  and other layouts;
- torchgeo: its usual recipe, RasterDataset + GridGeoSampler (160 px, stride 100) + a
  DataLoader, mean-stitched into an in-memory array, then written;
- naive: a loop that reads one window, predicts it and writes it, 160 px / stride 100.

    make bench-env && SANDMINE_BENCH=1 source scripts/env.sh   # torchgeo lives in the bench environment only
    python bench/inference.py [--size 2048] [--model models/model.pt]
    python bench/inference.py --quick      # limit and the params' layout only (no torchgeo needed)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).parent))
from _scene import big_scene  # noqa: E402

from sandmine import models  # noqa: E402
from sandmine.core.config import load_params  # noqa: E402
from sandmine.core.metrics import quantise  # noqa: E402
from sandmine.core.raster import read_image  # noqa: E402
from sandmine.core.windows import keep_region, starts  # noqa: E402
from sandmine.prediction import Stitch, normalise, predict_file  # noqa: E402


def limit(model, x: np.ndarray, tile: int) -> float:
    """Seconds for the model over (C, H, W) `x` in non-overlapping tile×tile tiles."""
    c, h, w = x.shape
    h2, w2 = h // tile * tile, w // tile * tile
    tiles = (
        x[:, :h2, :w2]
        .reshape(c, h2 // tile, tile, w2 // tile, tile)
        .transpose(1, 3, 0, 2, 4)
        .reshape(-1, c, tile, tile)
    )
    batch = max(1, (512 * 512) // (tile * tile))
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in range(0, len(tiles), batch):
            torch.sigmoid(model(torch.from_numpy(np.ascontiguousarray(tiles[b : b + batch]))))
    return (time.perf_counter() - t0) * (h * w) / (h2 * w2)  # scaled to the whole raster


def torchgeo_recipe(model, ckpt, src: Path, dst: Path, size: int = 160, stride: int = 100, batch: int = 8) -> None:
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    with rasterio.open(src) as s:
        names, scales = list(s.descriptions), np.array(s.scales, np.float32)
        profile, transform, h, w = s.profile, s.transform, s.height, s.width
    bands = ckpt["bands"]
    idx = [names.index(b) for b in bands]
    mean, std = np.array(ckpt["mean"], np.float32), np.array(ckpt["std"], np.float32)

    class Export(RasterDataset):
        filename_glob = src.name
        all_bands = tuple(names)

    ds = Export(paths=str(src.parent), bands=bands)
    loader = DataLoader(ds, sampler=GridGeoSampler(ds, size=size, stride=stride), batch_size=batch,
                        collate_fn=stack_samples)  # fmt: skip
    total = np.zeros((h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    res = transform.a
    with torch.no_grad():
        for sample in loader:
            x = sample["image"].numpy() * scales[idx][None, :, None, None]
            x = np.stack([normalise(xi, bands, mean, std) for xi in x])
            prob = torch.sigmoid(model(torch.from_numpy(x)))[:, 0].numpy()
            for p, q in zip(prob, sample["bounds"]):
                col = int(round((q[0].start - transform.c) / res))
                row = int(round((transform.f - q[1].stop) / res))
                # cells may overhang the raster (torchgeo pads them): keep the part inside
                r0, c0 = max(row, 0), max(col, 0)
                r1, c1 = min(row + size, h), min(col + size, w)
                total[r0:r1, c0:c1] += p[r0 - row : r1 - row, c0 - col : c1 - col]
                count[r0:r1, c0:c1] += 1
    out = quantise(total / np.maximum(count, 1))
    profile.update(count=1, dtype="uint8", driver="GTiff", nodata=None)
    with rasterio.open(dst, "w", **profile) as d:
        d.write(out, 1)


def naive(model, ckpt, src: Path, dst: Path, window: int = 160, stride: int = 100, discard: int = 30) -> None:
    bands = ckpt["bands"]
    mean, std = np.array(ckpt["mean"], np.float32), np.array(ckpt["std"], np.float32)
    with rasterio.open(src) as s:
        names, scales = list(s.descriptions), np.array(s.scales, np.float32)
        idx = [names.index(b) for b in bands]
        profile = s.profile
        profile.update(count=1, dtype="uint8", driver="GTiff", nodata=None)
        h, w = s.height, s.width
        with rasterio.open(dst, "w", **profile) as d, torch.no_grad():
            for r in starts(h, window, stride):
                for c in starts(w, window, stride):
                    x = s.read([i + 1 for i in idx], window=Window(c, r, window, window)).astype(np.float32)
                    x = normalise(x * scales[idx][:, None, None], bands, mean, std)
                    p = torch.sigmoid(model(torch.from_numpy(x)[None]))[0, 0].numpy()
                    rs, cs = keep_region(r, c, window, h, w, discard)
                    d.write(quantise(p[rs, cs]), 1, window=Window(c + cs.start, r + rs.start, cs.stop - cs.start,
                                                                  rs.stop - rs.start))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--image", default=None, help="an exported image to tile (default: the first in data/images)")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--quick", action="store_true", help="only the limit and sandmine with the params' stitching")
    a = ap.parse_args()
    if not a.quick and importlib.util.find_spec("torchgeo") is None:
        sys.exit("torchgeo is not installed: it is in the bench extra only (requirements-bench.lock). Run\n"
                 "  make bench-env && SANDMINE_BENCH=1 source scripts/env.sh\nthen this script again.")  # fmt: skip
    torch.set_num_threads(a.threads)
    p = load_params(a.params)
    model, ckpt = models.load_checkpoint(a.model)
    src_image = Path(a.image) if a.image else sorted(Path("data/images").glob("*.tif"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = big_scene(src_image, tmp / "scene.tif", a.size, a.size)
        km2 = a.size * a.size * 100 / 1e6
        img = read_image(src, ckpt["bands"])
        x = normalise(img.data, ckpt["bands"], np.array(ckpt["mean"], np.float32), np.array(ckpt["std"], np.float32))
        with torch.no_grad():  # warm-up
            model(torch.from_numpy(x[None, :, :256, :256].copy()))
        rows = []
        best = None
        for tile in [t for t in (256, 512, 1024) if t <= a.size]:
            sec = limit(model, x, tile)
            rows.append((f"limit: model alone, {tile} px tiles", sec))
            best = sec if best is None else min(best, sec)
        if a.size <= 2048:
            t0 = time.perf_counter()
            with torch.no_grad():
                model(torch.from_numpy(x[None]))
            rows.append(("limit: one whole-raster pass", time.perf_counter() - t0))
        del x, img
        q = p.predict
        layouts = [(q.window_px, q.stride_px, q.discard_px, q.batch_size)]
        others = [] if a.quick else [(256, 192, 32, 8), (512, 448, 32, 2), (1024, 992, 16, 1)]
        layouts += [x for x in others if x[:3] != layouts[0][:3]]
        for i, (window, stride, discard, batch) in enumerate(layouts):
            t0 = time.perf_counter()
            predict_file(model, ckpt, src, tmp / f"ours{i}.tif", Stitch(window, stride, discard, batch, q.blend))
            name = f"sandmine {window}/{stride}/{discard} {q.blend}" + (" (params)" if i == 0 else "")
            rows.append((name, time.perf_counter() - t0))
        if not a.quick:
            t0 = time.perf_counter()
            torchgeo_recipe(model, ckpt, src, tmp / "torchgeo.tif")
            rows.append(("torchgeo RasterDataset + GridGeoSampler 160/100, mean", time.perf_counter() - t0))
            t0 = time.perf_counter()
            naive(model, ckpt, src, tmp / "naive.tif")
            rows.append(("naive loop: read, predict, write one 160 px window", time.perf_counter() - t0))
    print(f"scene {a.size} x {a.size} px = {km2:.1f} km², {len(ckpt['bands'])} bands, "
          f"{ckpt['encoder']} {ckpt['decoder']}, {a.threads} threads")  # fmt: skip
    print(f"{'method':62s} {'s':>7s} {'km²/s':>7s} {'of limit':>8s}")
    for name, sec in rows:
        print(f"{name:62s} {sec:7.1f} {km2 / sec:7.3f} {best / sec:8.2f}")


if __name__ == "__main__":
    main()
