"""Sites (study rectangles) and observations (a site on a date): reading and checking them."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from sandmine.errors import SandmineError

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
        raise SandmineError("sites file not found", where, "create it (see README, 'Sites and observations')")
    try:
        doc = json.loads(path.read_text())
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


def read_observations(path: str | Path, sites: dict[str, Site]) -> list[Observation]:
    """Read `data/observations.csv` (obs_id, site_id, date, role), checked against sites."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise SandmineError("observations file not found", where)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"obs_id", "site_id", "date", "role"} - set(reader.fieldnames or [])
        if missing:
            raise SandmineError(f"missing column(s) {sorted(missing)}", where)
        rows = list(reader)
    out: list[Observation] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
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
