"""The survey's metrics (metrics/survey.json) and the summary printed at the end of a run."""

from __future__ import annotations

from pathlib import Path

from sandmine import monitoring
from sandmine.survey.plan import Counts, Plan
from sandmine.survey.seams import Merged


def metrics(plan: Plan, thr: float, mines: list[Merged], changes: list[Merged], area: object, synthetic: bool) -> dict:
    """Counts, the threshold, and hectares per period (mined, change per class; truth on the synthetic world)."""
    import pandas as pd

    assert isinstance(area, pd.DataFrame)
    rivers, chunks, periods, buffer_km2 = plan.rivers, plan.chunks, plan.periods, plan.buffer_km2
    out = {
        "rivers": len(rivers),
        "chunks": len(chunks),
        "periods": len(periods),
        "buffer_km2": buffer_km2,
        "threshold": thr,
        "mine_polygons": len(mines),
        "mines_across_seams": sum(len(m.chunks) > 1 for m in mines),
        "mined_ha": {q.label: float(area[area.period == q.label].mined_ha.sum()) for q in periods},
        "change_ha": {
            name: float(sum(m.area_ha for m in changes if m.key[2] == name))
            for name in monitoring.CHANGE_NAMES.values()
        },
    }
    if synthetic:
        out["truth_ha"] = {q.label: float(area[area.period == q.label].truth_ha.sum()) for q in periods}
        out["pixel_ha"] = {q.label: float(area[area.period == q.label].pixel_ha.sum()) for q in periods}
    return out


def summary(area: object, buffer_km2: float, counts: Counts, mosaics: list[Path], out_dir: Path, seconds: float) -> str:
    """The lines printed at the end of a run: the work done, the area table, where the outputs are."""
    import pandas as pd

    assert isinstance(area, pd.DataFrame)
    lines = [
        "",
        f"survey: {buffer_km2:,.1f} km² of river buffer in {counts.chunks} chunks × {len(counts.periods)} period(s), "
        f"{seconds:,.0f} s ({counts.exported} exported / {counts.export_cached} cached, "
        f"{counts.predicted} predicted / {counts.predict_cached} cached)",
    ]
    cols = ["river", "period", "mined_ha", "polygons", "new_ha", "expanded_ha", "abandoned_ha"]
    if "truth_ha" in area.columns:
        cols.append("truth_ha")
    lines.append(area[cols].to_string(index=False, na_rep="-"))
    gpkg, folder = out_dir / "survey.gpkg", out_dir / "mosaic"
    lines.append(f"GeoPackage {gpkg} (layers mines, change, chunks, area); {len(mosaics)} mosaic files in {folder}")
    return "\n".join(lines)
