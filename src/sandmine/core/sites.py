"""Sites (study rectangles) and observations (a site on a date): reading and checking them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from sandmine.core.errors import SandmineError

ROLES = ("labelled", "infer")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Site:
    site_id: str
    river: str
    basin: str
    geometry: BaseGeometry  # EPSG:4326 polygon


@dataclass(frozen=True)
class Observation:
    obs_id: str
    site_id: str
    date: dt.date
    role: str


def _safe_id(value: str, where: str, field: str) -> str:
    # ids become file names: refuse anything that could escape its folder
    if not SAFE_ID.match(value) or ".." in value:
        raise SandmineError(
            f"{field} '{value}' is not a safe identifier",
            where,
            "use letters, digits, '_', '-' and '.', without '..' or '/'",
        )
    return value


def read_sites(path: str | Path) -> dict[str, Site]:
    """Read `data/sites.geojson`: polygons in EPSG:4326 with site_id, river, basin."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise SandmineError("sites file not found", where, "create it (see docs/pipeline.md, 'Sites and observations')")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM, as some editors write it
    except json.JSONDecodeError as exc:
        raise SandmineError(f"not valid JSON ({exc})", where) from exc
    sites: dict[str, Site] = {}
    for i, feat in enumerate(doc.get("features", [])):
        at = f"{where}: feature {i}"
        props = feat.get("properties") or {}
        for key in ("site_id", "river", "basin"):
            if not props.get(key):
                raise SandmineError(f"property '{key}' is missing or empty", at)
        site_id = _safe_id(str(props["site_id"]), at, "site_id")
        try:
            geom = shape(feat["geometry"])
        except Exception as exc:
            raise SandmineError(f"geometry is not valid GeoJSON ({exc})", at) from exc
        west, south, east, north = geom.bounds
        if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
            raise SandmineError(
                f"site '{site_id}' has coordinates out of range (bounds {geom.bounds})",
                at,
                "give [lon, lat] in EPSG:4326 degrees (lon −180…180, lat −90…90)",
            )
        if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.area == 0:
            raise SandmineError(f"site '{site_id}' is not a polygon with area", at)
        if site_id in sites:
            raise SandmineError(f"site_id '{site_id}' appears twice", at)
        sites[site_id] = Site(site_id, str(props["river"]), str(props["basin"]), geom)
    if not sites:
        raise SandmineError("no sites in file", where)
    return sites


def read_manifest(path: str | Path) -> list[dict]:
    """Rows of `data/images/manifest.csv` (obs_id, site_id, date, role, file, crs, height, width, source)."""
    path = Path(path)
    if not path.exists():
        raise SandmineError("image manifest not found", str(path), "run the export stage first")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def read_user_csv(path: Path, columns: list[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV a user made, e.g. in Excel: a UTF-8 BOM, spaces around header
    names and rows of empty cells are accepted; another separator or too few columns is an error.

    Raises:
        SandmineError: the file is not UTF-8, lacks a column, is `;`- or tab-separated (names the
            separator), or a row has fewer fields than the header (names the line).
    """
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        raise SandmineError(
            f"not UTF-8 text ({exc})", where, "save it as 'CSV UTF-8 (Comma delimited)' (Excel) or as UTF-8"
        ) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
    missing = [c for c in columns if c not in reader.fieldnames]
    if missing:
        header = ",".join(reader.fieldnames)
        sep = next((s for s in (";", "\t", "|") if s in header and "," not in header), None)
        if sep is not None:
            name = "tab" if sep == "\t" else f"'{sep}'"
            raise SandmineError(
                f"the file is {name}-separated (header {header!r}); columns must be separated by ','",
                where,
                "save it comma-separated (Excel: 'CSV UTF-8 (Comma delimited)', or set the list separator to ',')",
            )
        raise SandmineError(
            f"missing column(s) {missing} (header has {reader.fieldnames})",
            where,
            f"the first line must name the columns: {','.join(columns)}",
        )
    rows = []
    for row in reader:
        line = reader.line_num
        if all(not (v or "").strip() for k, v in row.items() if k is not None):
            continue  # a row of empty cells, as spreadsheets leave below the data
        short = [c for c in columns if row.get(c) is None]
        if short:
            raise SandmineError(
                f"line has {len(columns) - len(short)} of {len(columns)} columns (no {short})",
                f"{where}: line {line}",
                "give every row a value for each column of the header",
            )
        rows.append((line, row))
    return rows


def read_observations(path: str | Path, sites: dict[str, Site]) -> list[Observation]:
    """Read `data/observations.csv` (obs_id, site_id, date, role), checked against sites."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise SandmineError("observations file not found", where)
    rows = read_user_csv(path, ["obs_id", "site_id", "date", "role"])
    out: list[Observation] = []
    seen: set[str] = set()
    for line, row in rows:
        at = f"{where}: line {line}"
        obs_id = _safe_id(row["obs_id"].strip(), at, "obs_id")
        site_id = row["site_id"].strip()
        if site_id not in sites:
            raise SandmineError(
                f"site '{site_id}' of observation '{obs_id}' is not in the sites file",
                at,
                "add the site to data/sites.geojson or fix the site_id",
            )
        try:
            date = dt.date.fromisoformat(row["date"].strip())
        except ValueError as exc:
            raise SandmineError(f"date '{row['date']}' is not YYYY-MM-DD", at) from exc
        role = row["role"].strip()
        if role not in ROLES:
            raise SandmineError(f"role '{role}' is not one of {ROLES}", at)
        if obs_id != f"{site_id}_{date.isoformat()}":
            raise SandmineError(f"obs_id '{obs_id}' should be '{site_id}_{date.isoformat()}'", at)
        if obs_id in seen:
            raise SandmineError(f"obs_id '{obs_id}' appears twice", at)
        seen.add(obs_id)
        out.append(Observation(obs_id, site_id, date, role))
    if not out:
        raise SandmineError("no observations in file", where)
    return out
