"""Peak memory and windows/s of the train stage on the default world and on the paper-sized world.

    python bench/train_memory.py [--sizes default paper] [--epochs 1] [--windows 256] [--workers 0]
                                 [--no-calibrate]

Each world (its labelled observations: `catalogue --size`, then export, annotate-pull, aoi and split
through the stage functions) is built once under ~/.cache/sandmine/bench/ and reused; the paper-sized
one (39 sites, 9,614 km² per date, 2 dates) takes about 40 minutes on 2 busy cores. The train stage
(`steps.train.run`, what `stages/train.py` calls) then runs in a fresh subprocess per world with the
params.yaml recipe cut to `--epochs` epochs of `--windows` windows; its peak resident memory is the
child's VmHWM. Windows/s counts training windows over the fit (validation windows each epoch
included in the time). `--no-calibrate` skips predicting the val observations for the operating
threshold (5,226 km² in the paper-sized world). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

CACHE = Path(os.environ.get("SANDMINE_BENCH_CACHE", "~/.cache/sandmine/bench")).expanduser()
ROOT = Path(__file__).parents[1]


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process image (not ru_maxrss, which Linux carries across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _plain(v: object) -> object:
    return asdict(v) if hasattr(v, "__dataclass_fields__") else v  # type: ignore[arg-type]


def world(size: str, params: Path) -> tuple[Path, float]:
    """The folder of a built world (sites, observations, images, labels, aoi, split) and the seconds
    its build took; built now if missing (keyed by the params of the stages that build it)."""
    from sandmine.core.config import load_params

    p = load_params(params)
    upstream = {k: _plain(getattr(p, k)) for k in ("source", "bands", "world", "labels", "aoi", "split")}
    key = hashlib.sha256(json.dumps([size, upstream], sort_keys=True, default=str).encode()).hexdigest()[:12]
    root = CACHE / f"{size}-{key}"
    done = root / "build.json"
    if done.exists():
        return root, json.loads(done.read_text())["seconds"]
    from sandmine.sources.synthetic import catalogue
    from sandmine.steps import annotate_pull, aoi, export, split

    root.mkdir(parents=True, exist_ok=True)
    catalogue.write(root, size)
    obs = root / "observations.csv"
    with obs.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["role"] == "labelled"]  # the train stage reads only these
    with obs.open("w", newline="") as fh:
        out = csv.DictWriter(fh, ["obs_id", "site_id", "date", "role"], lineterminator="\n")
        out.writeheader()
        out.writerows(rows)
    sites, images, source, labels = root / "sites.geojson", root / "images", root / "source", root / "labels"
    steps = {
        "export": lambda: export.run(p, sites, obs, images, source),
        "labels": lambda: annotate_pull.run(p, source, images, labels, root / "labels.json"),
        "aoi": lambda: aoi.run(p, images, source / "rivers.geojson", root / "aoi"),
        "split": lambda: split.run(p, sites, obs, labels, root / "split.csv", root / "split.json", root / "split.png"),
    }
    start = time.perf_counter()
    for name, step in steps.items():
        t = time.perf_counter()
        step()
        print(f"{size} world: {name} in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    done.write_text(json.dumps({"seconds": seconds}))
    return root, seconds


def child(root: Path, params: Path, epochs: int, windows: int, workers: int, calibrate: bool) -> None:
    """Run the train stage on the world in `root`; print one JSON line of figures."""
    import logging

    from sandmine.core.config import load_params
    from sandmine.core.raster import read_grid
    from sandmine.steps import train
    from sandmine.steps.common import read_split

    logging.basicConfig(level=logging.WARNING)
    p = load_params(params)
    p.train.epochs, p.train.windows_per_epoch, p.train.patience = epochs, windows, epochs + 1
    p.train.workers = workers
    if not calibrate:
        train.calibrate = lambda *a, **k: ({"best_f1": 0.5, "area": 0.5}, {})  # type: ignore[assignment]
    rows = [r for r in read_split(root / "split.csv") if r["role"] in ("train", "val")]
    px = 0
    for r in rows:
        g = read_grid(root / "images" / f"{r['obs_id']}.tif")
        px += g.height * g.width
    with tempfile.TemporaryDirectory(prefix="sandmine-bench-") as tmp:
        t = Path(tmp)
        start = time.perf_counter()
        train.run(p, root / "images", root / "labels", root / "aoi", root / "split.csv", t / "model.pt",
                  t / "train.json", t / "timing.json", lambda e, m: None)  # fmt: skip
        stage_s = time.perf_counter() - start
        timing = json.loads((t / "timing.json").read_text())
    channels = len(p.model.bands) + len(p.model.indices)
    figures = {
        "observations": len(rows),
        "km2": px / 1e4,
        "stage_s": stage_s,
        "fit_s": timing["train_s"],
        "windows": epochs * windows,
        "peak_rss_mb": _vm_hwm_mb(),
        "scenes_mb": px * channels * 4 / 2**20,  # what holding the scenes as float32 took before streaming
    }
    print(json.dumps(figures))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=["default", "paper"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--windows", type=int, default=256, help="training windows per epoch")
    ap.add_argument("--workers", type=int, default=0, help="train.workers")
    ap.add_argument("--no-calibrate", action="store_true", help="skip predicting the val observations")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.params, a.epochs, a.windows, a.workers, not a.no_calibrate)
        return
    results = {}
    for size in a.sizes:
        root, build_s = world(size, a.params)
        print(f"{size} world: {root} (built in {build_s:.0f} s)", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--child", str(root), "--params", str(a.params), "--epochs", str(a.epochs),
               "--windows", str(a.windows), "--workers", str(a.workers)]  # fmt: skip
        cmd += ["--no-calibrate"] if a.no_calibrate else []
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"train stage failed on the {size} world:\n{res.stderr[-4000:]}")
        results[size] = {**json.loads(res.stdout.strip().splitlines()[-1]), "build_s": build_s}
    base = results.get("default", {}).get("peak_rss_mb")
    calib = "without" if a.no_calibrate else "with"
    print(
        f"\ntrain stage: {a.epochs} epoch(s) of {a.windows} windows, train.workers {a.workers}, {calib} calibration\n"
    )
    print("| world | train+val obs | km² | scenes as float32 (MB) | peak RSS (MB) | vs default | windows/s | "
          "fit s | stage s | world built in s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size, r in results.items():
        ratio = f"{r['peak_rss_mb'] / base:.2f}x" if base else "-"
        print(f"| {size} | {r['observations']} | {r['km2']:.0f} | {r['scenes_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
              f"{ratio} | {r['windows'] / r['fit_s']:.2f} | {r['fit_s']:.0f} | {r['stage_s']:.0f} | "
              f"{r['build_s']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
