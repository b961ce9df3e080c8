"""Stage split: data/split.csv, its statistics and a map."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from sandmine import report, split
from sandmine.core.config import Params
from sandmine.core.files import round_metrics, write_json, write_text
from sandmine.core.sites import read_observations, read_sites


def run(
    p: Params, sites_path: Path, obs_path: Path, labels_dir: Path, out_csv: Path, metrics: Path, plot: Path
) -> None:
    sites = read_sites(sites_path)
    observations = read_observations(obs_path, sites)
    with (labels_dir / "index.csv").open(newline="") as fh:
        index = list(csv.DictReader(fh))
    ok = {r["obs_id"] for r in index if r["status"] == "done"}
    fractions = {r["obs_id"]: float(r["mine_fraction"]) for r in index if r["status"] == "done"}
    rows = split.assign(sites, observations, ok, p.split)
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["obs_id", "site_id", "cluster", "role"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(out_csv, buf.getvalue())
    stats: dict[str, float] = {"clusters": p.split.n_clusters, "fold": p.split.fold}
    for role in ("train", "val", "test", "infer"):
        mine = [r for r in rows if r["role"] == role]
        stats[f"{role}_observations"] = len(mine)
        stats[f"{role}_sites"] = len({r["site_id"] for r in mine})
        if role != "infer" and mine:
            stats[f"{role}_mine_fraction"] = float(np.mean([fractions[r["obs_id"]] for r in mine]))
    write_json(metrics, round_metrics(stats, 5))
    centroids = {s: (g.geometry.centroid.x, g.geometry.centroid.y) for s, g in sites.items()}
    report.split_map(rows, centroids, plot)
