"""Peak memory of streamed prediction as the scene grows (each size in a fresh process).

    python bench/inference_memory.py [--sizes 5000 10000] [--model models/model.pt]

A 10,000 × 10,000 px scene is 1,000 km² at 10 m. The scene is an exported image tiled to size
(14 int16 bands, 2.8 GB uncompressed); prediction streams it strip by strip into a COG with
the params' stitching, so memory should stay flat while time grows with the area.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process image. Not ru_maxrss: Linux carries that across
    fork and exec, so a child would report its (large) parent's memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(model_path: str, src: str, dst: str, window: int, stride: int) -> None:
    import torch

    from sandmine import models
    from sandmine.core.config import load_params
    from sandmine.prediction import Stitch, predict_file

    q = load_params("params.yaml").predict
    torch.set_num_threads(2)
    model, ckpt = models.load_checkpoint(model_path)
    t0 = time.perf_counter()
    s = Stitch(window, stride, q.discard_px, max(1, q.batch_size * 256 * 256 // (window * window)), q.blend)
    predict_file(model, ckpt, Path(src), Path(dst), s, progress=True)
    peak = _vm_hwm_mb()
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": peak}))


def _limit(model_path: str, src_image: Path) -> float:
    """km²/s of the model alone over a 2048 px crop in non-overlapping 512 px tiles."""
    import numpy as np
    import torch
    from _scene import big_scene
    from inference import limit

    from sandmine import models
    from sandmine.core.raster import read_image
    from sandmine.prediction import normalise

    torch.set_num_threads(2)
    model, ckpt = models.load_checkpoint(model_path)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        src = big_scene(src_image, Path(tmp) / "crop.tif", 2048, 2048)
        img = read_image(src, ckpt["bands"])
    x = normalise(img.data, ckpt["bands"], np.array(ckpt["mean"], np.float32), np.array(ckpt["std"], np.float32))
    limit(model, x[:, :512, :512], 512)  # warm-up
    return 2048 * 2048 * 100 / 1e6 / limit(model, x, 512)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], a.child[2], int(a.child[3]), int(a.child[4]))
        return
    from _scene import big_scene

    from sandmine.core.config import load_params

    q = load_params("params.yaml").predict
    src_image = sorted(Path("data/images").glob("*.tif"))[0]
    limit = _limit(a.model, src_image)
    print(f"window {q.window_px}, stride {q.stride_px}, discard {q.discard_px}, blend {q.blend}; "
          f"limit (model alone, 512 px tiles, 2048 px crop): {limit:.1f} km²/s")  # fmt: skip
    print(f"{'scene px':>13s} {'km²':>7s} {'minutes':>8s} {'km²/s':>7s} {'of limit':>8s} {'peak RSS MB':>12s}")
    for size in a.sizes:
        with tempfile.TemporaryDirectory(dir=".") as tmp:
            src = big_scene(src_image, Path(tmp) / "scene.tif", size, size)
            out = subprocess.run(
                [sys.executable, __file__, "--child", a.model, str(src), str(Path(tmp) / "pred.tif"),
                 str(q.window_px), str(q.stride_px)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            km2 = size * size * 100 / 1e6
            speed = km2 / r["seconds"]
            print(f"{size:>6d}x{size:<6d} {km2:7.0f} {r['seconds'] / 60:8.1f} {speed:7.2f} {speed / limit:8.2f} "
                  f"{r['peak_rss_mb']:12.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
