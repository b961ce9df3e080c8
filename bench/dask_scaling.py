"""Dask scale-out over observations: 1 worker against 2 (one torch thread each), and the same
observations in this process with 2 threads, for the default model and stitching.

    python bench/dask_scaling.py [--n 6] [--model models/model.pt]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sandmine import scale
from sandmine.config import load_params
from sandmine.steps.common import stitch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--n", type=int, default=6, help="observations (the first n images in data/images)")
    a = ap.parse_args()
    p = load_params("params.yaml")
    images = sorted(Path("data/images").glob("*.tif"))[: a.n]
    px = 0
    from sandmine.raster import read_grid

    for im in images:
        g = read_grid(im)
        px += g.height * g.width
    km2 = px * 100 / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, workers, threads in (
            ("in process, 2 threads", 0, 2),
            ("Dask 1 worker", 1, 1),
            ("Dask 2 workers", 2, 1),
        ):
            jobs = [scale.Job(im, Path(tmp) / f"{workers}" / im.name) for im in images]
            t0 = time.perf_counter()
            scale.predict_many(Path(a.model), jobs, stitch(p), workers, None, p.predict.tile_rows, threads)
            rows.append((label, time.perf_counter() - t0))
    print(f"{len(images)} observations, {km2:.0f} km², window {p.predict.window_px} stride {p.predict.stride_px}")
    one = dict(rows)["Dask 1 worker"]
    print(f"{'run':24s} {'s':>6s} {'km²/s':>7s} {'speed-up vs 1 worker':>21s}")
    for label, sec in rows:
        print(f"{label:24s} {sec:6.1f} {km2 / sec:7.2f} {one / sec:21.2f}")


if __name__ == "__main__":
    main()
