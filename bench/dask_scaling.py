"""Dask scale-out over observations: 1 worker against 2 (one torch thread each), and the same
observations in this process with 2 threads, for the default model and stitching.

    python bench/dask_scaling.py [--n 4] [--size 2048] [--model models/model.pt]

The observations are exported images tiled to size × size px (so that the work, not the
cluster's start-up, dominates); times include starting the local cluster.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _scene import big_scene  # noqa: E402

from sandmine import scale  # noqa: E402
from sandmine.core.config import load_params  # noqa: E402
from sandmine.scale import stitch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--n", type=int, default=4, help="observations (made from the first n images in data/images)")
    ap.add_argument("--size", type=int, default=2048)
    a = ap.parse_args()
    p = load_params("params.yaml")
    rows = []
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        images = [
            big_scene(src, Path(tmp) / src.name, a.size, a.size)
            for src in sorted(Path("data/images").glob("*.tif"))[: a.n]
        ]
        km2 = len(images) * a.size * a.size * 100 / 1e6
        for label, workers, threads in (
            ("in process, 2 threads", 0, 2),
            ("Dask 1 worker x 1 thread", 1, 1),
            ("Dask 2 workers x 1 thread", 2, 1),
        ):
            jobs = [scale.Job(im, Path(tmp) / f"out{workers}" / im.name) for im in images]
            t0 = time.perf_counter()
            scale.predict_many(Path(a.model), jobs, stitch(p.predict), workers, None, p.predict.tile_rows, threads)
            rows.append((label, time.perf_counter() - t0))
    print(f"{len(images)} observations of {a.size} x {a.size} px, {km2:.0f} km², window {p.predict.window_px} "
          f"stride {p.predict.stride_px}")  # fmt: skip
    one = rows[1][1]
    print(f"{'run':28s} {'s':>6s} {'km²/s':>7s} {'speed-up vs 1 worker':>21s}")
    for label, sec in rows:
        print(f"{label:28s} {sec:6.1f} {km2 / sec:7.2f} {one / sec:21.2f}")


if __name__ == "__main__":
    main()
