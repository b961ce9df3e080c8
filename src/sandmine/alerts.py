"""Survey alerts: mine polygons that are new (or expanded) in their period inside or near a protected zone.

The rule, per period after the first, against the mine polygons of the period just before it (all
rivers of the survey; polygons below `infer.min_area_ha` are not in either):

- **new**: the polygon overlaps none of the previous period's polygons (less than one 10 m pixel,
  `OVERLAP_HA`, in common);
- **expanded**: it overlaps some, and the part of it outside all of them covers at least
  `survey.alert_growth_ha` (outline jitter between periods stays well under 1 ha for the survey's mines);
- otherwise it is an old mine: no alert.

The first period has no period before it, so nothing in it can be called new: it raises no alert.
A polygon is in a zone when it lies inside it or within `survey.zone_margin_m` of it; one alert is
one (polygon, zone) pair, so a polygon near two zones is an alert of each. Areas and distances are
measured in the UTM zone of each polygon. Where the previous period had no imagery (clouds, no
data) a mine that was there shows as new: the alert says that something is there now, and a
reviewer confirms it in the map.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from sandmine.core.errors import SandmineError
from sandmine.core.files import write_text
from sandmine.core.raster import utm_crs

if TYPE_CHECKING:
    import geopandas as gpd

    from sandmine.core.config import SurveyParams

log = logging.getLogger(__name__)

OVERLAP_HA = 0.01  # one 10 m pixel: less than this in common with the previous period's mines is none
UNNAMED = "(unnamed zone)"
COLUMNS = [
    "zone",
    "period",
    "previous",
    "kind",
    "mine_id",
    "river",
    "area_ha",
    "zone_ha",
    "grown_ha",
    "distance_m",
    "lon",
    "lat",
    "mean_prob",
]


def read_zones(path: str | Path, name_field: str, layer: str = "", margin_m: float = 0.0) -> gpd.GeoDataFrame:
    """The zones of a vector file (any CRS and format GeoPandas reads; `layer` of a GeoPackage) in
    EPSG:4326, one row per name (`zone`, geometry): features of one name are one zone, features with an
    empty name are `(unnamed zone)`.

    Raises:
        SandmineError: naming the file and the field when the file is missing, unreadable, has no CRS,
            holds several layers with none chosen, lacks `name_field`, has no geometry, or holds lines
            or points while `margin_m` is 0 (they could hold no mine).
    """
    import geopandas as gpd
    import pandas as pd

    from sandmine.core.vectors import few, read_vectors

    where = str(Path(path).expanduser())
    frame = read_vectors(path, "zones", "survey.zones", layer, "survey.zones_layer")
    if name_field not in frame.columns:
        columns = [str(c) for c in frame.columns if c != "geometry"]
        fix = (
            f"set 'survey.zone_field' to the field that names each zone (one of {columns})"
            if columns
            else f"add a text field '{name_field}' naming each zone (QGIS: Layer > Open Attribute Table > New Field)"
        )
        raise SandmineError(f"zones have no field '{name_field}' (fields: {columns})", where, fix)
    if frame.empty:
        raise SandmineError("zones file has no geometry", where, "draw the zones as polygons")
    kinds = frame.geometry.geom_type.str.replace("Multi", "", regex=False)
    thin = [int(i) + 1 for i in frame.index[kinds != "Polygon"]]
    if thin and margin_m <= 0:
        raise SandmineError(
            f"zone feature(s) {few(thin)} (counting from 1) are lines or points, and survey.zone_margin_m is 0: "
            "no mine could lie in them",
            where,
            "draw those zones as polygons, or set 'survey.zone_margin_m' to the distance from them that counts",
        )
    names = frame[name_field].astype("string").str.strip()
    names = names.fillna(UNNAMED).mask(names == "", UNNAMED)
    rows = [(str(n), shapely.union_all(list(g.geometry))) for n, g in frame.groupby(names, sort=True)]
    zones = gpd.GeoDataFrame(
        pd.DataFrame({"zone": [n for n, _ in rows]}), geometry=[g for _, g in rows], crs="EPSG:4326"
    )
    log.info("zones: %d feature(s) of %s read as %d zone(s)", len(frame), where, len(zones))
    return zones


def _in_utm(geom: BaseGeometry, epsg: int) -> BaseGeometry:
    from sandmine.core.raster import to_crs

    return to_crs(geom, "EPSG:4326", f"EPSG:{epsg}")


def find(
    mines: gpd.GeoDataFrame,
    periods: list[str],
    zones: gpd.GeoDataFrame,
    margin_m: float,
    growth_ha: float,
) -> gpd.GeoDataFrame:
    """Alerts (EPSG:4326, columns `COLUMNS` and the polygon) of the survey's mine polygons.

    Args:
        mines: the survey's layer `mines` (EPSG:4326; river, period, area_ha, mean_prob), in the order
            it is written: `mine_id` is the row's position + 1, the polygon's fid in the GeoPackage.
        periods: the period labels in date order.
        zones: `read_zones`'s frame.
        margin_m: a polygon within this distance of a zone is in it.
        growth_ha: the least growth that makes an overlapping polygon an `expanded` alert.
    """
    import geopandas as gpd
    import pandas as pd
    from pyproj import Transformer

    recs: list[dict[str, object]] = []
    geoms: list[BaseGeometry] = []
    keys: list[tuple[int, str, int]] = []  # rows by period, zone, mine_id
    if len(zones) and len(mines):
        mines = mines.reset_index(drop=True)
        centre = mines.geometry.representative_point()
        epsg = np.array([utm_crs(p.x, p.y).to_epsg() for p in centre])
        for code in sorted(set(epsg.tolist())):
            local = mines.iloc[np.flatnonzero(epsg == code)]
            zone_geoms = [_in_utm(g, code) for g in zones.geometry]
            reach = [g.buffer(margin_m) if margin_m > 0 else g for g in zone_geoms]
            back = Transformer.from_crs(f"EPSG:{code}", "EPSG:4326", always_xy=True)
            by_period = {q: mines[mines.period == q] for q in periods}
            for prev, cur in zip(periods, periods[1:]):
                now = local[local.period == cur]
                if now.empty:
                    continue
                before = shapely.union_all([_in_utm(g, code) for g in by_period[prev].geometry])
                for i, row in now.iterrows():
                    poly = _in_utm(row.geometry, code)
                    hit = [k for k, r in enumerate(reach) if poly.intersects(r)]
                    if not hit:
                        continue
                    common = poly.intersection(before).area / 1e4
                    if common < OVERLAP_HA:
                        kind, grown = "new", poly.area / 1e4
                    else:
                        kind, grown = "expanded", poly.difference(before).area / 1e4
                        if grown < growth_ha:
                            continue
                    c = poly.centroid
                    lon, lat = back.transform(c.x, c.y)
                    for k in hit:
                        recs.append(
                            {
                                "zone": str(zones.zone.iloc[k]),
                                "period": cur,
                                "previous": prev,
                                "kind": kind,
                                "mine_id": int(i) + 1,
                                "river": str(row.river),
                                "area_ha": round(poly.area / 1e4, 3),
                                "zone_ha": round(poly.intersection(zone_geoms[k]).area / 1e4, 3),
                                "grown_ha": round(grown, 3),
                                "distance_m": round(poly.distance(zone_geoms[k]), 1),
                                "lon": round(lon, 6),
                                "lat": round(lat, 6),
                                "mean_prob": round(float(row.mean_prob), 3),
                            }
                        )
                        geoms.append(row.geometry)
                        keys.append((periods.index(cur), str(zones.zone.iloc[k]), int(i) + 1))
    frame = gpd.GeoDataFrame(pd.DataFrame(recs, columns=COLUMNS), geometry=geoms, crs="EPSG:4326")
    order = sorted(range(len(frame)), key=lambda j: keys[j])
    return frame.iloc[order].reset_index(drop=True)


def write_csv(alerts: gpd.GeoDataFrame, path: Path) -> None:
    """The alerts without their polygons (lon/lat of each centroid instead), one row each, atomically."""
    buf = io.StringIO()
    alerts[COLUMNS].to_csv(buf, index=False, lineterminator="\n")
    write_text(path, buf.getvalue())


def metrics(alerts: gpd.GeoDataFrame, zones: gpd.GeoDataFrame, periods: list[str]) -> dict[str, object]:
    """Counts for metrics/survey.json: zones, alerts (new / expanded), their hectares (each polygon once),
    and alerts per period after the first."""
    distinct = alerts.drop_duplicates("mine_id")
    return {
        "zones": len(zones),
        "alerts": len(alerts),
        "alerts_new": int((alerts.kind == "new").sum()),
        "alerts_expanded": int((alerts.kind == "expanded").sum()),
        "alerts_ha": float(distinct.area_ha.sum()),
        "alerts_period": {q: int((alerts.period == q).sum()) for q in periods[1:]},
    }


def map_layers(alerts: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> dict[str, object]:
    """The zones and alerts as GeoJSON FeatureCollections (EPSG:4326) for `webmap.map_report(alerts=…)`."""

    def collection(frame: gpd.GeoDataFrame, keep: list[str]) -> dict[str, object]:
        feats = [
            {
                "type": "Feature",
                "properties": {k: (v.item() if hasattr(v, "item") else v) for k, v in row[keep].items()},
                "geometry": shapely.geometry.mapping(row.geometry),
            }
            for _, row in frame.iterrows()
        ]
        return {"type": "FeatureCollection", "features": feats}

    return {"zones": collection(zones, ["zone"]), "alerts": collection(alerts, COLUMNS)}


@dataclass
class Found:
    """What the survey writes of its alerts: the layer, the metrics and the map's layers."""

    alerts: gpd.GeoDataFrame
    metrics: dict[str, object]
    map: dict[str, object]


def for_survey(s: SurveyParams, mines: gpd.GeoDataFrame, periods: list[str], csv_path: Path) -> Found | None:
    """The survey's alerts from `s.zones` (None when it is empty): writes `csv_path`, logs the counts."""
    if not s.zones:
        return None
    zones = read_zones(s.zones, s.zone_field, s.zones_layer, s.zone_margin_m)
    alerts = find(mines, periods, zones, s.zone_margin_m, s.alert_growth_ha)
    write_csv(alerts, csv_path)
    m = metrics(alerts, zones, periods)
    log.info(
        "alerts: %d in %d zone(s) (%d new, %d expanded, %.1f ha) within %g m, written to %s and the layer alerts",
        m["alerts"], m["zones"], m["alerts_new"], m["alerts_expanded"], m["alerts_ha"], s.zone_margin_m, csv_path,
    )  # fmt: skip
    return Found(alerts, m, map_layers(alerts, zones))
