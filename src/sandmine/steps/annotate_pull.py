"""Stage annotate-pull: the label export to per-observation GeoJSON and masks."""

from __future__ import annotations

from pathlib import Path

from sandmine import labels as labels_mod
from sandmine.config import Params
from sandmine.files import fresh_dir, round_metrics, write_json
from sandmine.sites import read_manifest
from sandmine.sources import labelbox


def run(p: Params, source_dir: Path, images_dir: Path, out_dir: Path, metrics: Path) -> None:
    manifest = read_manifest(images_dir / "manifest.csv")
    rows = (
        labelbox.read_ndjson(source_dir / "labels.ndjson")
        if p.labels.source == "synthetic"
        else labelbox.fetch_export(p.labels.project_id)
    )
    fresh_dir(out_dir)
    stats = labels_mod.pull(rows, manifest, images_dir, out_dir, p.labels)
    write_json(metrics, round_metrics(stats, 5))
