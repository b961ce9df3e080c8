"""The survey's rivers: a vector file read by name (any CRS), clipped to an optional region."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from sandmine.core.errors import SandmineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class River:
    """One river of the survey: its name, its geometry (EPSG:4326, lines or polygons) and the
    properties of its first feature (the synthetic world's rivers carry their recipe there)."""

    name: str
    geometry: BaseGeometry
    properties: dict = field(default_factory=dict, hash=False, compare=False)


UNNAMED = "(unnamed)"  # the river of features whose name field is empty


def read_rivers(path: str | Path, name_field: str, region: str | Path | None = None, layer: str = "") -> list[River]:
    """Rivers of a vector file (any CRS and format GeoPandas reads; `layer` of a GeoPackage), by name,
    clipped to `region`.

    Features with the same name are one river; features whose name is empty are the river `(unnamed)`.
    The log says what was read (features, rivers, km of line, km² of polygons) and what was left out
    (features without geometry, rivers outside the region).

    Raises:
        SandmineError: naming the file and the field when the file is missing, has no CRS, holds several
            layers with none chosen, lacks `name_field`, or no river lies inside the region.
    """
    from sandmine.core.vectors import extent, few, read_vectors

    where = str(Path(path).expanduser())
    frame = read_vectors(path, "rivers", "survey.rivers", layer, "survey.rivers_layer")
    if name_field not in frame.columns:
        columns = [c for c in frame.columns if c != "geometry"]
        fix = (
            f"set 'survey.river_field' to the field that names each river (one of {columns})"
            if columns
            else f"the file has no fields at all, so its rivers cannot be told apart: add a text field '{name_field}' "
            f"naming each river (QGIS: Layer > Open Attribute Table > New Field, then fill it in, or Field "
            f"Calculator with a constant name such as 'Ganga' for a file of one river) and save it"
        )
        raise SandmineError(f"rivers have no field '{name_field}' (fields: {columns})", where, fix)
    if frame.empty:
        raise SandmineError("rivers file has no geometry", where, "draw the rivers as lines or polygons")
    names = frame[name_field].astype("string").str.strip()
    blank = names.isna() | (names == "")
    if blank.any():
        rows = [int(i) + 1 for i in frame.index[blank]]
        log.warning(
            "%s: %d feature(s) with an empty '%s' are surveyed as the river '%s' (features %s, counting from 1)",
            where, len(rows), name_field, UNNAMED, few(rows),
        )  # fmt: skip
    names = names.fillna(UNNAMED).mask(names == "", UNNAMED)
    area = None
    if region:
        area = _region(Path(region).expanduser())
    rivers, outside = [], []
    for name, group in frame.groupby(names, sort=True):
        geom = shapely.union_all(list(group.geometry))
        if area is not None:
            geom = geom.intersection(area)
        if geom.is_empty:
            outside.append(str(name))
            continue
        props = {k: _plain(v) for k, v in group.iloc[0].items() if k != "geometry"}
        rivers.append(River(str(name), geom, props))
    km, km2 = (sum(v) for v in zip(*(extent(r.geometry) for r in rivers), strict=True)) if rivers else (0.0, 0.0)
    log.info(
        "rivers: %d feature(s) of %s read as %d river(s): %.1f km of line, %.1f km² of polygons%s%s",
        len(frame), where, len(rivers), km, km2, f" inside the region {region}" if region else "",
        f"; outside the region, left out: {', '.join(outside)}" if outside else "",
    )  # fmt: skip
    if not rivers:
        raise SandmineError(
            f"no river of {Path(path).name} lies inside the region {region}",
            "params.yaml: survey.region",
            "check that the region overlaps the rivers (both are reprojected to EPSG:4326), or clear survey.region",
        )
    return rivers


def _region(path: Path) -> BaseGeometry:
    from sandmine.core.vectors import read_vectors

    frame = read_vectors(path, "region", "survey.region")
    geom = shapely.union_all(list(frame.geometry))
    if geom.is_empty or geom.area == 0:
        raise SandmineError("region has no polygon with area", str(path), "draw the region as a polygon")
    return geom


def _plain(value: object) -> object:
    """numpy scalars from a GeoDataFrame row as plain Python numbers."""
    return value.item() if isinstance(value, np.generic) else value
