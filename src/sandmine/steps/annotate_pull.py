"""Stage annotate-pull: the label export to per-observation GeoJSON and masks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sandmine import labels as labels_mod
from sandmine.config import Params
from sandmine.files import fresh_dir, round_metrics, write_json
from sandmine.sites import read_manifest
from sandmine.sources import labelbox


def run(p: Params, source_dir: Path, images_dir: Path, out_dir: Path, metrics: Path) -> None:
    manifest = read_manifest(images_dir / "manifest.csv")
    rows: Iterable[dict | labelbox.LabelRow]
    if p.labels.source == "synthetic":
        rows = labelbox.read_ndjson(source_dir / "labels.ndjson")
    elif p.labels.source == "labelbox":
        rows = labelbox.fetch_export(p.labels.project_id)
    else:
        rows = _geojson_rows(Path(p.labels.folder), manifest)
    fresh_dir(out_dir)
    stats = labels_mod.pull(rows, manifest, images_dir, out_dir, p.labels)
    write_json(metrics, round_metrics(stats, 5))


def _geojson_rows(folder: Path, manifest: list[dict]) -> list[labelbox.LabelRow]:
    """One label row per labelled observation that has `{obs_id}.geojson` in `folder`."""
    from sandmine.errors import SandmineError
    from sandmine.sources.local import geojson_labels

    if not folder.is_dir():
        raise SandmineError("labels folder not found", str(folder), "fix 'labels.folder' in params.yaml")
    return [
        geojson_labels(folder / f"{r['obs_id']}.geojson", r["obs_id"])
        for r in manifest
        if r["role"] == "labelled" and (folder / f"{r['obs_id']}.geojson").exists()
    ]
