"""Survey cost at scale: km² of river buffer per second, end to end, on the synthetic long river.

    python bench/survey.py [--km 250] [--periods 2] [--workers 1 2] [--model models/model.pt]
                           [--india-km2 50000]

Writes a synthetic river of `--km` (catalogue `--size river`; 250 km crosses from UTM zone 44N into
45N) and, for each worker count, runs the survey stage's own code from an empty cache: export (the
synthetic world rendering each chunk and period), prediction with the default model and stitching,
and the outputs (chunk COGs, seam merge, mosaics, GeoPackage, map page), on a Dask LocalCluster that
the bench holds so that it can read each worker's peak RSS at the end (one torch thread per task).
Prints per phase seconds, km²/s, peak memory per worker, the survey's mined area against the world's
exact truth, and an extrapolation to `--india-km2` of buffer per period (an assumption: say where it
comes from when you quote it) on N workers.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyogrio

from sandmine.core.config import load_params
from sandmine.core.files import write_text
from sandmine.sources.synthetic.catalogue import river_geojson
from sandmine.steps import survey


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/model.pt"))
    ap.add_argument("--km", type=float, default=250.0)
    ap.add_argument("--periods", type=int, default=2, choices=[1, 2, 3, 4])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--india-km2", type=float, default=50_000.0, help="km² of 1 km river buffer per period")
    a = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    periods = ["2025-10-01/2025-12-31", "2026-01-01/2026-03-31", "2026-04-01/2026-06-30", "2026-07-01/2026-09-30"]
    rows = []
    with tempfile.TemporaryDirectory(dir=".", prefix="tmp-bench-survey-") as tmp:
        root = Path(tmp)
        write_text(root / "river.geojson", json.dumps(river_geojson(a.km)) + "\n")
        for n in a.workers:
            p = load_params("params.yaml")
            p.survey.rivers, p.survey.periods = str(root / "river.geojson"), periods[: a.periods]
            p.survey.cache_dir = str(root / f"cache-{n}")
            p.predict.threads = 1
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=0
            )
            with Client(cluster) as client:
                p.predict.scheduler = cluster.scheduler_address
                t0 = time.perf_counter()
                counts = survey.run(p, a.model, root / f"out-{n}", root / f"map-{n}.html", root / f"m-{n}.json")
                wall = time.perf_counter() - t0
                peaks = sorted(client.run(_peak_mb).values())
            cluster.close()
            area = pyogrio.read_dataframe(root / f"out-{n}" / "survey.gpkg", layer="area")
            rows.append((n, counts, wall, peaks, area))
    km2 = rows[0][1].buffer_km2
    work = km2 * a.periods
    print(f"\nsurvey bench: {a.km:g} km of river, {km2:,.1f} km² of buffer × {a.periods} periods = {work:,.1f} km²")
    print(f"{rows[0][1].chunks} chunks of {load_params('params.yaml').survey.chunk_km:g} km; model {a.model}")
    print("workers | plan s | export s | predict s | outputs s | total s | km²/s | peak RSS per worker (MB) | main MB")
    for n, c, wall, peaks, _ in rows:
        s = c.seconds
        print(
            f"{n:7d} | {s['plan']:6.1f} | {s['export']:8.1f} | {s['predict']:9.1f} | {s['outputs']:9.1f} | "
            f"{wall:7.1f} | {work / wall:5.2f} | {', '.join(f'{x:,.0f}' for x in peaks):>24} | {_peak_mb():,.0f}"
        )
    area = rows[-1][4]
    print("\nmined area per period: survey (polygons, pixels) against the world's exact truth, in the buffer")
    print("period                 | survey ha | pixel ha | truth ha | survey / truth")
    for period, g in area.groupby("period"):
        m, px, t = g.mined_ha.sum(), g.pixel_ha.sum(), g.truth_ha.sum()
        print(f"{period} | {m:9.1f} | {px:8.1f} | {t:8.1f} | {m / t:14.3f}")
    n, c, wall, _, _ = rows[-1]
    per_worker = work / wall / n
    s = c.seconds
    predict_only = work / s["predict"] / n if s["predict"] else float("nan")
    print(
        f"\nextrapolation to {a.india_km2:,.0f} km² of buffer per period, per worker: {per_worker:.2f} km²/s end to end"
        f" (export here is the synthetic world's rendering), {predict_only:.2f} km²/s prediction alone (what a"
        " cluster does when Earth Engine exports the chunks on Google's side):"
    )
    for workers in (1, 8, 32, 128):
        both = a.india_km2 / (per_worker * workers) / 3600
        alone = a.india_km2 / (predict_only * workers) / 3600
        print(f"  {workers:4d} workers: {both:7.2f} h per period end to end, {alone:7.2f} h prediction alone")


if __name__ == "__main__":
    sys.exit(main())
