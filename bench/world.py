"""Figures of the embedded world: render time, peak memory, and label statistics.

    python bench/world.py                 # render the default world to a temporary folder
    python bench/world.py --largest-paper # also render the largest site of the paper-sized world

Label statistics are read from the pipeline's outputs (data/labels, data/aoi) when they exist:
the mine pixel fraction over whole scenes, within the AOI (the 1 km river buffer) and outside it,
and the agreement of the annotators' masks with the exact truth (data/source/truth).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from sandmine.core.config import load_params
from sandmine.core.raster import read_mask
from sandmine.core.schema import IGNORE, MINE
from sandmine.core.sites import read_observations, read_sites
from sandmine.sources.synthetic.catalogue import catalogue, sites_geojson
from sandmine.sources.synthetic.world import export


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def render(sites_path: Path, obs_path: Path, params_path: Path) -> None:
    p = load_params(params_path)
    sites = read_sites(sites_path)
    obs = read_observations(obs_path, sites)
    px = 0
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export(sites, obs, p.bands, p.world, Path(tmp) / "images", Path(tmp) / "source")
        seconds = time.perf_counter() - start
        for line in (Path(tmp) / "images" / "manifest.csv").read_text().splitlines()[1:]:
            f = line.split(",")
            px += int(f[6]) * int(f[7])
    print(
        f"render: {len(obs)} observations, {px / 1e6:.1f} Mpx ({px / 1e4:.0f} km²) in {seconds:.1f} s; "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )


def largest_paper(params_path: Path) -> None:
    import json

    from sandmine.core.sites import Observation

    p = load_params(params_path)
    site = max(catalogue("paper"), key=lambda s: s[5] * s[6])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sites.geojson"
        path.write_text(json.dumps(sites_geojson([site])))
        sites = read_sites(path)
        import datetime as dt

        obs = [Observation(f"{site[0]}_2026-04-10", site[0], dt.date(2026, 4, 10), "labelled")]
        start = time.perf_counter()
        export(sites, obs, p.bands, p.world, Path(tmp) / "images", Path(tmp) / "source")
        seconds = time.perf_counter() - start
    print(
        f"largest paper site {site[0]}: {site[5] * site[6]:.0f} km² in {seconds:.1f} s; peak RSS {peak_rss_mb():.0f} MB"
    )


def label_stats(root: Path) -> None:
    labels = sorted((root / "data/labels").glob("*.tif"))
    if not labels:
        print("label statistics: run `dvc repro` first")
        return
    n = {"scene": [0, 0], "aoi": [0, 0], "outside": [0, 0]}
    agree = [0, 0, 0]  # drawn & truth, drawn, truth
    for path in labels:
        label = read_mask(path)
        aoi = read_mask(root / "data/aoi" / path.name) > 0
        valid = label != IGNORE
        mine = label == MINE
        for key, keep in (("scene", valid), ("aoi", valid & aoi), ("outside", valid & ~aoi)):
            n[key][0] += int((mine & keep).sum())
            n[key][1] += int(keep.sum())
        truth_path = root / "data/source/truth" / path.name
        if truth_path.exists():
            truth = read_mask(truth_path) == 1
            agree[0] += int((mine & truth & valid).sum())
            agree[1] += int((mine & valid).sum())
            agree[2] += int((truth & valid).sum())
    print("| mine pixel fraction | synthetic | real (India) |\n|---|---|---|")
    real = {"scene": 0.0269, "aoi": 0.0607, "outside": 0.0007}
    names = {"scene": "whole scenes", "aoi": "within 1 km river buffer", "outside": "outside the buffer"}
    for key in n:
        print(f"| {names[key]} | {n[key][0] / max(n[key][1], 1):.4f} | {real[key]:.4f} |")
    print(f"AOI share of labelled pixels: {n['aoi'][1] / max(n['scene'][1], 1):.2f}")
    if agree[1]:
        print(
            f"annotators vs exact truth: {agree[0] / agree[2]:.2f} of true mine pixels labelled, "
            f"{agree[0] / agree[1]:.2f} of labelled pixels truly mined, IoU "
            f"{agree[0] / (agree[1] + agree[2] - agree[0]):.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--largest-paper", action="store_true")
    ap.add_argument("--no-render", action="store_true")
    args = ap.parse_args()
    if not args.no_render:
        render(args.root / "data/sites.geojson", args.root / "data/observations.csv", args.root / "params.yaml")
    if args.largest_paper:
        largest_paper(args.root / "params.yaml")
    label_stats(args.root)
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
