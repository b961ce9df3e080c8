"""Survey alerts against the synthetic world: do the mines it opens between two periods raise alerts?

    python bench/alerts.py [data/survey/survey.gpkg] [--growth-ha 1 2 5]

Reads the layer `mines` of a default survey's GeoPackage (stage survey on the embedded world, with the
params.yaml of this checkout), runs `sandmine.alerts.find` with `survey.zones` and `survey.zone_margin_m`
for each `--growth-ha`, and compares the alerts with the world's own mines (drawn again from
`world.seed`): how many alerts overlap a mine born between the middle days of the first two periods,
and how many of those mines lying in or near a zone have an alert. Seconds, no model needed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyproj import Transformer

from sandmine import alerts
from sandmine import survey as sv
from sandmine.core.config import load_params
from sandmine.sources.synthetic.river import RES_M, STRIP_PX, LongRiver, _strip_mines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gpkg", type=Path, nargs="?", default=Path("data/survey/survey.gpkg"))
    parser.add_argument("--growth-ha", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    p = load_params(Path("params.yaml"))
    s = p.survey
    periods = sv.parse_periods(s.periods, "survey.periods")
    a, b = periods[0].middle, periods[1].middle
    (feature,) = json.loads(Path(s.rivers).read_text())["features"]
    river = LongRiver.from_properties(feature["properties"])
    e0, n0 = river.origin
    to_lonlat = Transformer.from_crs(river.crs, "EPSG:4326", always_xy=True)

    def lonlat(xy: np.ndarray) -> np.ndarray:  # the river's pixel frame to EPSG:4326
        return np.column_stack(to_lonlat.transform(e0 + xy[:, 0] * RES_M, n0 - xy[:, 1] * RES_M))

    strips = -(-river.length_px // STRIP_PX)
    world = [m for i in range(strips) for m in _strip_mines(river, i, p.world.seed, p.world.mine_density)]
    born = [shapely.transform(m.shape, lonlat) for m in world if a < m.born <= b]
    zones = alerts.read_zones(s.zones, s.zone_field, s.zones_layer, s.zone_margin_m)
    near = shapely.union_all(list(zones.geometry)).buffer(s.zone_margin_m / 111_000)  # degrees, roughly
    born_near = [g for g in born if g.intersects(near)]
    mines = pyogrio.read_dataframe(args.gpkg, layer="mines")
    labels = [q.label for q in periods]
    print(f"{len(mines)} mine polygons, {len(zones)} zones, {len(born)} mines born between {a} and {b}")
    for growth in args.growth_ha:
        found = alerts.find(mines, labels, zones, s.zone_margin_m, growth)
        line = [f"growth {growth:g} ha: {len(found)} alerts"]
        for kind in ("new", "expanded"):
            sel = found[found.kind == kind]
            real = sum(any(g.intersects(poly) for g in born) for poly in sel.geometry)
            line.append(f"{kind} {len(sel)} ({real} overlap a mine born in between)")
        caught = sum(any(g.intersects(poly) for poly in found.geometry) for g in born_near)
        line.append(f"mines born in between in or near a zone: {caught}/{len(born_near)} alerted")
        print("; ".join(line))


if __name__ == "__main__":
    main()
