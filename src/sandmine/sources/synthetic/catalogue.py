"""The default study sites: rectangles at approximate real places on Indian sand-mining rivers.

`python -m sandmine.sources.synthetic.catalogue data/` rewrites `data/sites.geojson` and
`data/observations.csv`; those committed files, not this module, are what the pipeline reads.
`--size paper` writes the same 39 sites at the sizes of the prior study (2.5–582 km², 9,614 km²
in all) for benchmarks. `--size river` writes `river.geojson`: one long synthetic river (`--km`
long, 120 by default) on the Son, for river-scale surveys (`river.py` renders it chunk by chunk),
and `zones.geojson`: protected reaches of it for the survey's alerts, drawn from the world's seed
(`--seed`, default `world.seed`'s) so that some hold mines born between the default survey periods.

Rectangles are broad across the river (about 6 km) and shorter along it, so that, as in the real
labelled data, about half of each scene lies more than 1 km from the river.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
from pathlib import Path

from sandmine.core.files import write_text

# site_id, river, basin, lon, lat: approximate places of reported sand mining
PLACES = [
    ("betwa_hamirpur", "Betwa", "Yamuna", 79.95, 25.93),
    ("betwa_orchha", "Betwa", "Yamuna", 78.64, 25.35),
    ("ken_banda", "Ken", "Yamuna", 80.33, 25.48),
    ("ken_panna", "Ken", "Yamuna", 80.02, 24.73),
    ("chambal_dholpur", "Chambal", "Yamuna", 77.90, 26.68),
    ("chambal_etawah", "Chambal", "Yamuna", 79.02, 26.55),
    ("yamuna_kalpi", "Yamuna", "Yamuna", 79.73, 26.12),
    ("yamuna_hamirpur", "Yamuna", "Yamuna", 80.15, 25.97),
    ("sindh_bhind", "Sindh", "Yamuna", 78.78, 26.45),
    ("son_dehri", "Son", "Ganga", 84.18, 24.90),
    ("son_koelwar", "Son", "Ganga", 84.78, 25.55),
    ("son_sidhi", "Son", "Ganga", 81.95, 24.40),
    ("ajay_ilambazar", "Ajay", "Bhagirathi-Hooghly", 87.60, 23.62),
    ("damodar_bardhaman", "Damodar", "Damodar", 87.85, 23.20),
    ("subarnarekha_jamshedpur", "Subarnarekha", "Subarnarekha", 86.18, 22.80),
    ("brahmani_talcher", "Brahmani", "Brahmani", 85.22, 20.95),
    ("mahanadi_cuttack", "Mahanadi", "Mahanadi", 85.88, 20.47),
    ("mahanadi_sambalpur", "Mahanadi", "Mahanadi", 83.97, 21.47),
    ("mahanadi_rajim", "Mahanadi", "Mahanadi", 81.88, 20.97),
    ("narmada_hoshangabad", "Narmada", "Narmada", 77.72, 22.76),
    ("narmada_bhedaghat", "Narmada", "Narmada", 79.80, 23.13),
    ("narmada_barwani", "Narmada", "Narmada", 74.90, 22.03),
    ("tapi_bhusawal", "Tapi", "Tapi", 75.80, 21.05),
    ("mahi_vadodara", "Mahi", "Mahi", 73.10, 22.35),
    ("sabarmati_ahmedabad", "Sabarmati", "Sabarmati", 72.58, 23.00),
    ("banas_tonk", "Banas", "Chambal-Banas", 75.80, 26.15),
    ("wainganga_gondiya", "Wainganga", "Godavari", 80.05, 21.35),
    ("godavari_nanded", "Godavari", "Godavari", 77.30, 19.15),
    ("godavari_bhadrachalam", "Godavari", "Godavari", 80.88, 17.67),
    ("godavari_rajahmundry", "Godavari", "Godavari", 81.78, 17.00),
    ("krishna_sangli", "Krishna", "Krishna", 74.57, 16.85),
    ("bhima_pandharpur", "Bhima", "Krishna", 75.33, 17.68),
    ("krishna_vijayawada", "Krishna", "Krishna", 80.60, 16.52),
    ("tungabhadra_hampi", "Tungabhadra", "Krishna", 76.46, 15.34),
    ("pennar_nellore", "Pennar", "Pennar", 79.98, 14.44),
    ("palar_vellore", "Palar", "Palar", 79.13, 12.93),
    ("kaveri_erode", "Kaveri", "Kaveri", 77.73, 11.34),
    ("kaveri_trichy", "Kaveri", "Kaveri", 78.70, 10.86),
    ("teesta_jalpaiguri", "Teesta", "Brahmaputra", 88.70, 26.55),
]
LABELLED_DATES = ["2025-11-15", "2026-04-10"]  # post-monsoon and dry season
INFER = {
    "betwa_hamirpur": ["2024-11-20", "2025-04-12", "2026-11-10"],
    "son_dehri": ["2024-11-18", "2025-04-15", "2026-11-08"],
}
# river, basin, lon, lat of the start, seed: the Son below Sidhi, flowing roughly east (UTM 44N
# for 120 km; about 150 km on it crosses into zone 45 at 84°E)
LONG_RIVER = ("Son", "Ganga", 82.55, 24.45, 1)
PAPER_KM2 = (2.5, 582.0, 9614.0)  # smallest, largest, total of the prior study's rectangles


def default_sizes(n: int) -> list[tuple[float, float]]:
    """(width_km, height_km): 5.5–7 km across the river, 1.6–3.4 km along it, varied per site."""
    return [(5.5 + 1.5 * ((i * 7) % n) / n, 1.6 + 1.8 * ((i * 11) % n) / n) for i in range(n)]


def paper_sizes(n: int) -> list[tuple[float, float]]:
    """Sizes from 2.5 to 582 km² summing to 9,614 km², as rectangles of aspect 1.5."""
    small, large, total = PAPER_KM2

    def areas(power: float) -> list[float]:
        return [small * (large / small) ** ((i / (n - 1)) ** power) for i in range(n)]

    lo, hi = 0.1, 10.0  # a larger power skews towards small sites: bisect on the total
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(areas(mid)) > total else (lo, mid)
    return [(math.sqrt(a * 1.5), math.sqrt(a / 1.5)) for a in areas((lo + hi) / 2)]


def rectangle(lon: float, lat: float, width_km: float, height_km: float) -> list[list[float]]:
    """A lon/lat ring of a rectangle of the given size centred on (lon, lat)."""
    dlat = height_km / 2 / 110.574
    dlon = width_km / 2 / (111.320 * math.cos(math.radians(lat)))
    w, e, s, n = lon - dlon, lon + dlon, lat - dlat, lat + dlat
    return [[round(x, 6), round(y, 6)] for x, y in [(w, s), (e, s), (e, n), (w, n), (w, s)]]


def sites_geojson(sites: list[tuple]) -> dict:
    """Sites as (site_id, river, basin, lon, lat, width_km, height_km) to a FeatureCollection."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"site_id": sid, "river": river, "basin": basin},
                "geometry": {"type": "Polygon", "coordinates": [rectangle(lon, lat, wk, hk)]},
            }
            for sid, river, basin, lon, lat, wk, hk in sites
        ],
    }


def observations_csv(site_ids: list[str], labelled: list[str], infer: dict[str, list[str]]) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["obs_id", "site_id", "date", "role"])
    for sid in site_ids:
        rows = [(d, "labelled") for d in labelled] + [(d, "infer") for d in infer.get(sid, [])]
        for date, role in sorted(rows):
            out.writerow([f"{sid}_{date}", sid, date, role])
    return buf.getvalue()


def catalogue(size: str = "default") -> list[tuple]:
    sizes = paper_sizes(len(PLACES)) if size == "paper" else default_sizes(len(PLACES))
    return [(*place, round(w, 3), round(h, 3)) for place, (w, h) in zip(PLACES, sizes)]


def river_geojson(length_km: float) -> dict:
    """A FeatureCollection of the one long river (its centreline and properties)."""
    from sandmine.sources.synthetic.river import long_river, river_feature

    name, basin, lon, lat, seed = LONG_RIVER
    river = long_river(name, basin, lon, lat, length_km, seed)
    return {"type": "FeatureCollection", "features": [river_feature(river)]}


def zones_geojson(length_km: float, world_seed: int | None = None) -> dict:
    """Protected reaches of the long river (`river.protected_reaches`) for the default survey periods and
    the world's mine density, from `world_seed` (default: `world.seed`'s default)."""
    from sandmine.core.config import SurveyParams, WorldParams
    from sandmine.sources.synthetic.river import long_river, protected_reaches

    world = WorldParams()
    middles = []
    for period in SurveyParams().periods[:2]:
        start, end = (dt.date.fromisoformat(d) for d in period.split("/"))
        middles.append(start + dt.timedelta(days=((end - start).days + 1) // 2))  # as survey.Period.middle
    name, basin, lon, lat, seed = LONG_RIVER
    river = long_river(name, basin, lon, lat, length_km, seed)
    seed_ = world.seed if world_seed is None else world_seed
    return protected_reaches(river, seed_, world.mine_density, (middles[0], middles[1]))


def write(folder: Path, size: str = "default", km: float = 120.0, world_seed: int | None = None) -> None:
    if size == "river":
        write_text(folder / "river.geojson", json.dumps(river_geojson(km), indent=1) + "\n")
        write_text(folder / "zones.geojson", json.dumps(zones_geojson(km, world_seed), indent=1) + "\n")
        return
    sites = catalogue(size)
    write_text(folder / "sites.geojson", json.dumps(sites_geojson(sites), indent=1) + "\n")
    write_text(folder / "observations.csv", observations_csv([s[0] for s in sites], LABELLED_DATES, INFER))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?", default=Path("data"))
    parser.add_argument("--size", choices=["default", "paper", "river"], default="default")
    parser.add_argument("--km", type=float, default=120.0, help="--size river: the river's length")
    parser.add_argument("--seed", type=int, default=None, help="--size river: world.seed the zones are drawn for")
    args = parser.parse_args()
    write(args.folder, args.size, args.km, args.seed)
