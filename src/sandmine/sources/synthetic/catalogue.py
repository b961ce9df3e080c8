"""The default study sites: rectangles at approximate real places on Indian sand-mining rivers.

`python -m sandmine.sources.synthetic.catalogue data/` rewrites `data/sites.geojson` and
`data/observations.csv`; those committed files, not this module, are what the pipeline reads.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

from sandmine.files import write_text

# site_id, river, basin, lon, lat, width_km, height_km
SITES = [
    ("betwa_hamirpur", "Betwa", "Yamuna", 79.95, 25.93, 4.0, 3.2),
    ("betwa_orchha", "Betwa", "Yamuna", 78.64, 25.35, 3.6, 3.0),
    ("ken_banda", "Ken", "Yamuna", 80.33, 25.48, 4.2, 3.0),
    ("ken_panna", "Ken", "Yamuna", 80.02, 24.73, 3.2, 3.2),
    ("chambal_dholpur", "Chambal", "Yamuna", 77.90, 26.68, 4.0, 3.4),
    ("chambal_etawah", "Chambal", "Yamuna", 79.02, 26.55, 3.4, 3.0),
    ("yamuna_kalpi", "Yamuna", "Yamuna", 79.73, 26.12, 4.4, 3.0),
    ("son_dehri", "Son", "Ganga", 84.18, 24.90, 4.4, 3.4),
    ("son_koelwar", "Son", "Ganga", 84.78, 25.55, 3.8, 3.0),
    ("narmada_hoshangabad", "Narmada", "Narmada", 77.72, 22.76, 4.0, 3.0),
    ("narmada_bhedaghat", "Narmada", "Narmada", 79.80, 23.13, 3.2, 3.0),
    ("mahanadi_cuttack", "Mahanadi", "Mahanadi", 85.88, 20.47, 4.4, 3.2),
    ("mahanadi_sambalpur", "Mahanadi", "Mahanadi", 83.97, 21.47, 3.6, 3.0),
    ("wainganga_gondiya", "Wainganga", "Godavari", 80.05, 21.35, 3.8, 3.2),
    ("godavari_rajahmundry", "Godavari", "Godavari", 81.78, 17.00, 4.4, 3.4),
    ("godavari_bhadrachalam", "Godavari", "Godavari", 80.88, 17.67, 3.4, 3.0),
    ("krishna_vijayawada", "Krishna", "Krishna", 80.60, 16.52, 4.0, 3.0),
    ("tungabhadra_hampi", "Tungabhadra", "Krishna", 76.46, 15.34, 3.2, 3.0),
    ("damodar_bardhaman", "Damodar", "Damodar", 87.85, 23.20, 3.8, 3.2),
    ("subarnarekha_jamshedpur", "Subarnarekha", "Subarnarekha", 86.18, 22.80, 3.4, 3.0),
]
LABELLED_DATES = ["2025-11-15", "2026-04-10"]  # post-monsoon and dry season
INFER = {
    "betwa_hamirpur": ["2024-11-20", "2025-04-12", "2026-11-10"],
    "son_dehri": ["2024-11-18", "2025-04-15", "2026-11-08"],
}


def rectangle(lon: float, lat: float, width_km: float, height_km: float) -> list[list[float]]:
    """A lon/lat ring of a rectangle of the given size centred on (lon, lat)."""
    dlat = height_km / 2 / 110.574
    dlon = width_km / 2 / (111.320 * math.cos(math.radians(lat)))
    w, e, s, n = lon - dlon, lon + dlon, lat - dlat, lat + dlat
    return [[round(x, 6), round(y, 6)] for x, y in [(w, s), (e, s), (e, n), (w, n), (w, s)]]


def sites_geojson(sites: list[tuple] = SITES) -> dict:
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


def write_default(folder: Path) -> None:
    write_text(folder / "sites.geojson", json.dumps(sites_geojson(), indent=1) + "\n")
    write_text(folder / "observations.csv", observations_csv([s[0] for s in SITES], LABELLED_DATES, INFER))


if __name__ == "__main__":
    write_default(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
