"""The survey's GeoPackage: its layers as GeoDataFrames, written the same on every run."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from sandmine import monitoring
from sandmine.core.files import atomic_path
from sandmine.core.raster import to_crs
from sandmine.survey.chunks import Chunk
from sandmine.survey.periods import Period
from sandmine.survey.seams import Merged, nearest_river


def write_gpkg(path: Path, layers: dict[str, object]) -> None:
    """Write GeoDataFrames (spatial layers) and DataFrames (tables) as one GeoPackage, atomically."""
    import pandas as pd
    import pyogrio

    # GDAL writes the wall clock into gpkg_contents.last_change: a fixed stamp makes the file the same on every run
    before = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": GPKG_STAMP})
    with atomic_path(path) as tmp:
        work = tmp.with_name(tmp.name + ".gpkg")  # GDAL picks the driver from the suffix
        try:
            for name, frame in layers.items():
                if hasattr(frame, "geometry"):
                    frame.to_file(work, layer=name, driver="GPKG")  # type: ignore[attr-defined]
                else:
                    assert isinstance(frame, pd.DataFrame)
                    pyogrio.write_dataframe(frame, work, layer=name, driver="GPKG")
            os.replace(work, tmp)
        finally:
            work.unlink(missing_ok=True)
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": before})


GPKG_STAMP = "2000-01-01T00:00:00.000Z"


def frames(
    mines: list[Merged],
    changes: list[Merged],
    chunks: list[Chunk],
    by_id: dict[str, Chunk],
    periods: list[Period],
    pixel_ha: dict[tuple[str, str], float],
    truth_ha: dict[tuple[str, str], float] | None,
) -> dict[str, object]:
    """The GeoPackage's layers (EPSG:4326): mines, change, chunks, and the table area."""
    import geopandas as gpd
    import pandas as pd

    def rows(items: list[Merged], change: bool) -> gpd.GeoDataFrame:
        recs, geoms = [], []
        for m in items:
            rec: dict[str, object] = {
                "river": nearest_river(m.geometry, m.chunks, by_id),
                "chunk": ",".join(m.chunks),
            }
            if change:
                rec |= {"from": m.key[0], "to": m.key[1], "change": m.key[2], "area_ha": round(m.area_ha, 3)}
            else:
                rec |= {"period": m.key[0], "area_ha": round(m.area_ha, 3), "mean_prob": round(m.mean_prob, 3)}
            recs.append(rec)
            geoms.append(to_crs(m.geometry, f"EPSG:{m.zone.epsg}", "EPSG:4326"))
        cols = (
            ["river", "chunk", "from", "to", "change", "area_ha"]
            if change
            else ["river", "chunk", "period", "area_ha", "mean_prob"]
        )
        return gpd.GeoDataFrame(pd.DataFrame(recs, columns=cols), geometry=geoms, crs="EPSG:4326")

    mine_frame, change_frame = rows(mines, False), rows(changes, True)
    chunk_frame = gpd.GeoDataFrame(
        pd.DataFrame(
            [
                {
                    "chunk": c.chunk_id,
                    "zone": c.zone.name,
                    "rivers": ",".join(c.rivers),
                    "buffer_km2": round(c.aoi.area / 1e6, 4),
                }
                for c in chunks
            ]
        ),
        geometry=[to_crs(c.square, c.crs, "EPSG:4326") for c in chunks],
        crs="EPSG:4326",
    )
    buffer_km2: dict[str, float] = defaultdict(float)
    n_chunks: dict[str, int] = defaultdict(int)
    for c in chunks:
        for r, aoi in c.river_aois.items():
            buffer_km2[r] += aoi.area / 1e6
            n_chunks[r] += 1
    recs = []
    for r in sorted(buffer_km2):
        for i, q in enumerate(periods):
            sel = mine_frame[(mine_frame.river == r) & (mine_frame.period == q.label)]
            rec = {
                "river": r,
                "period": q.label,
                "start": q.start.isoformat(),
                "end": q.end.isoformat(),
                "mined_ha": round(float(sel.area_ha.sum()), 3),
                "polygons": len(sel),
                "pixel_ha": round(pixel_ha[(r, q.label)], 3),
                "buffer_km2": round(buffer_km2[r], 3),
                "chunks": n_chunks[r],
            }
            for name in monitoring.CHANGE_NAMES.values():
                ch = change_frame[
                    (change_frame.river == r) & (change_frame.to == q.label) & (change_frame.change == name)
                ]
                rec[f"{name}_ha"] = round(float(ch.area_ha.sum()), 3) if i else None
            if truth_ha is not None:
                rec["truth_ha"] = round(truth_ha[(r, q.label)], 3)
            recs.append(rec)
    return {"mines": mine_frame, "change": change_frame, "chunks": chunk_frame, "area": pd.DataFrame(recs)}
