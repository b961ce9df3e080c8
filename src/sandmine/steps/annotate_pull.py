"""Stage annotate-pull: the label export to per-observation GeoJSON and masks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sandmine import labels as labels_mod
from sandmine.core.config import Params
from sandmine.core.files import fresh_dir, round_metrics, write_json
from sandmine.core.schema import LabelRow
from sandmine.core.sites import read_manifest
from sandmine.sources import labelbox


def run(p: Params, source_dir: Path, images_dir: Path, out_dir: Path, metrics: Path) -> None:
    manifest = read_manifest(images_dir / "manifest.csv")
    rows: Iterable[LabelRow]
    if p.labels.source == "geojson":
        rows = _geojson_rows(Path(p.labels.folder), manifest)
    else:  # Labelbox export rows: the synthetic world's file, or the project's export
        export: Iterable[dict]
        if p.labels.source == "synthetic":
            export = labelbox.read_ndjson(source_dir / "labels.ndjson")
        else:
            export = labelbox.fetch_export(p.labels.project_id)
        rows = labelbox.parse_export(export, p.labels.project_id or None)
    fresh_dir(out_dir)
    stats = labels_mod.pull(rows, manifest, images_dir, out_dir, p.labels)
    write_json(metrics, round_metrics(stats, 5))


def _geojson_rows(folder: Path, manifest: list[dict]) -> list[LabelRow]:
    """One label row per labelled observation that has `{obs_id}.geojson` in `folder`."""
    from sandmine.core.errors import SandmineError
    from sandmine.sources.local import geojson_labels

    if not folder.is_dir():
        raise SandmineError("labels folder not found", str(folder), "fix 'labels.folder' in params.yaml")
    return [
        geojson_labels(folder / f"{r['obs_id']}.geojson", r["obs_id"])
        for r in manifest
        if r["role"] == "labelled" and (folder / f"{r['obs_id']}.geojson").exists()
    ]
