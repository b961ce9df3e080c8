"""A tiny world for bench/gpu_check.sh: the three smallest sites of the embedded world, one labelled date each,
run through the export, annotate-pull, aoi and split stage code; what train and evaluate read is copied to `out`.

    python bench/gpu_world.py gpu_world        # out/{images,labels,aoi}/<obs>.tif (+ labels/<obs>.geojson), split.csv

The split puts each site in a cluster of its own: one train, one val, one test.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from sandmine.core.config import load_params
from sandmine.steps import annotate_pull, aoi, export, split

SITES = 3


def _area(feature: dict) -> float:
    xs, ys = zip(*feature["geometry"]["coordinates"][0])
    return (max(xs) - min(xs)) * (max(ys) - min(ys))


def render(out: Path, params: Path = Path("params.yaml"), data: Path = Path("data")) -> list[dict]:
    """Render the tiny world into `out`; its split rows."""
    p = load_params(params)
    p = replace(p, split=replace(p.split, n_clusters=SITES, val_clusters=1, test_clusters=1))
    feats = json.loads((data / "sites.geojson").read_text())["features"]
    keep = sorted(feats, key=_area)[:SITES]  # the smallest sites: all travels in 64 MiB with the wheels
    ids = {f["properties"]["site_id"] for f in keep}
    with (data / "observations.csv").open(newline="") as fh:
        obs = [r for r in csv.DictReader(fh) if r["site_id"] in ids and r["role"] == "labelled"]
    first = {}
    for r in obs:
        first.setdefault(r["site_id"], r)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "sites.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": keep}))
        with (t / "observations.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, ["obs_id", "site_id", "date", "role"], lineterminator="\n")
            w.writeheader()
            w.writerows(first.values())
        export.run(p, t / "sites.geojson", t / "observations.csv", t / "images", t / "source")
        annotate_pull.run(p, t / "source", t / "images", t / "labels", t / "labels.json")
        aoi.run(p, t / "images", t / "source" / "rivers.geojson", t / "aoi")
        split.run(p, t / "sites.geojson", t / "observations.csv", t / "labels", t / "split.csv", t / "split.json",
                  t / "split.png")  # fmt: skip
        shutil.rmtree(out, ignore_errors=True)
        for sub in ("images", "labels", "aoi"):
            (out / sub).mkdir(parents=True)
            for r in first.values():  # the COGs, and the label polygons beside the label masks
                for f in (t / sub).glob(f"{r['obs_id']}.*"):
                    shutil.copy2(f, out / sub / f.name)
        shutil.copy2(t / "split.csv", out / "split.csv")
    with (out / "split.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    rows = render(a.out)
    print(", ".join(f"{r['obs_id']} ({r['role']})" for r in rows))


if __name__ == "__main__":
    main()
