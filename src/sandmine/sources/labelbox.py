"""Labelbox: read a project's export rows into polygons per observation.

Both export shapes are handled: image projects give `polygon: [{x, y}, …]` in the image's pixel
coordinates; geospatial (tile layer) projects give a `geojson` geometry in EPSG:4326 lon/lat.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shapely.geometry import Polygon, box, shape

from sandmine.core.config import ConfidenceParams
from sandmine.core.errors import SandmineError
from sandmine.core.schema import Annotation, LabelRow, polygon_parts, repaired
from sandmine.sources.local import one_area

log = logging.getLogger(__name__)


def _radio(classifications: list[dict], name: str) -> str | None:
    for c in classifications or []:
        if c.get("name") == name or c.get("value") == name.replace(" ", "_"):
            answer = c.get("radio_answer") or {}
            return answer.get("value") or answer.get("name")
    return None


def parse_row(row: dict, project_id: str | None = None) -> LabelRow:
    """Parse one export row (a pure function, tested on recorded rows).

    Raises:
        SandmineError: the row lacks a global key, is in several projects with none chosen, or an
            object's confidence answer is none of the `train.confidence` keys.
    """
    data_row = row.get("data_row") or {}
    obs_id = data_row.get("global_key")
    if not obs_id:
        raise SandmineError(
            "export row has no data_row.global_key",
            f"data row {data_row.get('id')}",
            "set global_key = obs_id when pushing rows",
        )
    projects = row.get("projects") or {}
    if project_id is None:
        if len(projects) != 1:
            raise SandmineError(f"row is in {len(projects)} projects", obs_id, "set 'labels.project_id'")
        project_id = next(iter(projects))
    project = projects.get(project_id)
    if project is None:
        return LabelRow(obs_id, "missing", problems=[f"not in project {project_id}"])
    status = (project.get("project_details") or {}).get("workflow_status", "")
    labels = project.get("labels") or []
    if status != "DONE" or not labels:
        return LabelRow(obs_id, "not_done", problems=[f"workflow_status={status or 'none'}, labels={len(labels)}"])
    out = LabelRow(obs_id, "done")
    ann = labels[-1].get("annotations") or {}  # the latest label wins
    out.activity = _radio(ann.get("classifications", []), "mine activity")
    for k, obj in enumerate(ann.get("objects") or []):
        name = obj.get("value") or obj.get("name") or ""
        conf = _confidence(_radio(obj.get("classifications", []), "confidence"), obs_id, k, name)
        if "geojson" in obj:
            geom, in_px = shape(obj["geojson"]), False
        elif "polygon" in obj:
            pts = [(p["x"], p["y"]) for p in obj["polygon"]]
            geom, in_px = (Polygon(pts) if len(pts) >= 3 else Polygon()), True
        elif "bounding_box" in obj:  # the rectangle tool: top, left, height, width in pixels
            b = obj["bounding_box"]
            geom, in_px = box(b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"]), True
        else:
            kind = obj.get("annotation_kind") or ", ".join(sorted(set(obj) - {"classifications"}))
            out.problems.append(f"object {k} ({name}) has no polygon ({kind}); skipped")
            continue
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            out.problems.append(f"object {k} ({name}) is a {geom.geom_type}, not an area; skipped")
            continue
        if not geom.is_valid:
            parts = repaired(polygon_parts(geom))
            geom = one_area(parts)
            out.problems.append(f"object {k} ({name}) was self-intersecting; repaired into {len(parts)} part(s)")
        if geom.is_empty:
            out.problems.append(f"object {k} ({name}) is empty; skipped")
            continue
        out.annotations.append(Annotation(name, geom, conf, in_px))
    return out


def parse_export(rows: Iterable[dict], project_id: str | None = None) -> list[LabelRow]:
    """One label row per data row of an export, in the order first seen (`parse_row` on each).

    A data row that appears more than once (two exports concatenated, a DONE and an IN_REVIEW copy)
    is resolved by one rule, said in the log: finished (DONE, with labels) copies win over unfinished
    ones; finished copies with the same labels are one; unfinished copies only keep the last.

    Raises:
        SandmineError: a data row with two finished copies whose labels differ (naming both: which
            one is right cannot be told from the export), or what `parse_row` raises.
    """
    seen: dict[str, list[tuple[int, dict, LabelRow]]] = {}
    for n, raw in enumerate(rows, start=1):
        row = parse_row(raw, project_id)
        seen.setdefault(row.obs_id, []).append((n, raw, row))
    out = []
    for obs_id, copies in seen.items():
        if len(copies) == 1:
            out.append(copies[0][2])
            continue
        said = "; ".join(f"export row {n}: {_describe(raw, project_id)}" for n, raw, _ in copies)
        done = [(n, raw, row) for n, raw, row in copies if row.status == "done"]
        if not done:
            log.warning("data row %s is in the export %d times (%s): none finished", obs_id, len(copies), said)
            out.append(copies[-1][2])
            continue
        different = {_content(row) for _, _, row in done}
        if len(different) > 1:
            raise SandmineError(
                f"data row '{obs_id}' is in the export {len(copies)} times with different finished labels ({said})",
                "labels export",
                "keep one row per data row: export the project once instead of joining exports, or delete the "
                "row that is out of date",
            )
        kept = done[-1]
        log.warning(
            "data row %s is in the export %d times (%s): export row %d kept (finished labels win over unfinished ones, "
            "identical finished copies count once)",
            obs_id, len(copies), said, kept[0],
        )  # fmt: skip
        out.append(kept[2])
    return out


def _describe(raw: dict, project_id: str | None) -> str:
    """A copy of a data row in words: its workflow status, label count and latest label's id."""
    projects = raw.get("projects") or {}
    project = projects.get(project_id) if project_id else next(iter(projects.values()), None)
    project = project or {}
    labels = project.get("labels") or []
    status = (project.get("project_details") or {}).get("workflow_status") or "no status"
    label = (labels[-1].get("id") or (labels[-1].get("label_details") or {}).get("updated_at")) if labels else None
    return f"{status}, {len(labels)} label(s)" + (f", label {label}" if label else "")


def _content(row: LabelRow) -> tuple:
    """What a finished row says, comparable between copies of the row."""
    objects = sorted((a.cls, a.confidence, a.in_pixels, a.geometry.normalize().wkb_hex) for a in row.annotations)
    return (row.activity, tuple(objects))


CONFIDENCES = tuple(f.name for f in dataclasses.fields(ConfidenceParams))  # high, medium, low: train.confidence


def _confidence(answer: str | None, obs_id: str, k: int, name: str) -> str:
    """The confidence key of an answer: `high` when unanswered; `High`, `low_confidence` or
    `Medium confidence` name theirs (ontologies spell options in many ways).

    Raises:
        SandmineError: any other answer (as the GeoJSON reader does: a weight is never guessed).
    """
    if answer is None:
        return "high"
    words = set(answer.lower().replace("_", " ").replace("-", " ").split())
    found = [c for c in CONFIDENCES if c in words]
    if len(found) == 1:
        return found[0]
    raise SandmineError(
        f"object {k} ({name}) has confidence '{answer}', not one of {', '.join(CONFIDENCES)}",
        f"Labelbox row {obs_id}",
        "name the ontology's confidence options high, medium and low (any case), or leave the answer out for high",
    )


def read_ndjson(path: str | Path) -> Iterator[dict]:
    """Rows of an NDJSON export file, with the line number in any error."""
    with open(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SandmineError(f"line {line_no} is not JSON ({exc})", str(path)) from exc


def _client() -> Any:
    key = os.environ.get("LABELBOX_API_KEY")
    if not key:
        raise SandmineError(
            "LABELBOX_API_KEY is not set", "environment", "export LABELBOX_API_KEY=… (never put it in params.yaml)"
        )
    import labelbox as lb

    return lb.Client(api_key=key)


def row_data(obs_id: str, url: str, bounds_4326: tuple[float, float, float, float] | None = None) -> dict:
    """A data row for one observation: a COG URL for an image project, or with `bounds` a tile
    layer (`url` with {z}/{x}/{y}) for a geospatial project. `global_key = obs_id` always."""
    if bounds_4326 is None:
        return {"row_data": url, "global_key": obs_id, "media_type": "IMAGE"}
    west, south, east, north = bounds_4326
    tiles = {
        "tile_layer_url": url,
        "epsg": "EPSG4326",
        "bounds": [[south, west], [north, east]],
        "min_zoom": 12,
        "max_zoom": 19,
        "version": 2,
    }
    return {"row_data": tiles, "global_key": obs_id, "media_type": "TMS_GEO"}


def push(project_id: str, dataset_name: str, rows: list[dict]) -> list[str]:
    """Create a dataset with `rows` (see `row_data`) and send them to the project as one batch.

    Returns the global keys sent. Errors of the upload task are raised with the rows they name.
    """
    if not project_id:
        raise SandmineError("'labels.project_id' is empty", "params.yaml", "give the Labelbox project id")
    client = _client()
    dataset = client.create_dataset(name=dataset_name)
    task = dataset.create_data_rows(rows)
    task.wait_till_done()
    if task.errors:
        raise SandmineError(f"Labelbox rejected data rows: {task.errors}", f"dataset {dataset_name}")
    keys = [r["global_key"] for r in rows]
    client.get_project(project_id).create_batch(name=dataset_name, global_keys=keys, priority=5)
    return keys


def fetch_export(project_id: str) -> Iterable[dict]:
    """Export a Labelbox project's rows with the labelbox SDK (needs LABELBOX_API_KEY)."""
    if not project_id:
        raise SandmineError("'labels.project_id' is empty", "params.yaml", "give the Labelbox project id")
    project = _client().get_project(project_id)
    task = project.export(
        params={"data_row_details": True, "label_details": True, "project_details": True, "performance_details": False}
    )
    task.wait_till_done()
    if task.has_errors():
        raise SandmineError(f"Labelbox export failed: {task.errors}", f"project {project_id}")
    return (json.loads(r.json) if isinstance(r.json, str) else r.json for r in task.get_buffered_stream())
