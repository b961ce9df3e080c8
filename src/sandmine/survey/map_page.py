"""The survey on the Leaflet map page: one entry per zone, one date per period, mines and change at full detail."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from sandmine import monitoring, webmap
from sandmine.core.raster import Grid, ImageReader
from sandmine.survey.chunks import RES_M, Chunk, read_inner
from sandmine.survey.periods import Period


def map_page(
    halo_px: int,
    chunks: list[Chunk],
    periods: list[Period],
    images: dict[tuple[str, str], tuple[Path, Path | None]],
    preds: dict[tuple[str, str], Path],
    frames: dict[str, object],
    synthetic: bool,
    path: Path,
    alert_layers: dict | None = None,
) -> None:
    """The survey on the Leaflet map: one entry per zone, one date per period (true colour and
    probability at a coarser resolution), mine and change polygons at full detail."""
    import geopandas as gpd

    mines, change = frames["mines"], frames["change"]
    assert isinstance(mines, gpd.GeoDataFrame) and isinstance(change, gpd.GeoDataFrame)
    by_site, changes = {}, []
    for zone in sorted({c.zone for c in chunks}, key=lambda z: z.epsg):
        zc = [c for c in chunks if c.zone == zone]
        canvas, f = _canvas(zc)
        zone_mines = mines[mines.chunk.str.split(",").str[0].isin({c.chunk_id for c in zc})]
        site = f"survey {zone.name}"
        obs = []
        for q in periods:
            rgb, prob = _draw(zc, canvas, f, q, images, preds, halo_px)
            sel = zone_mines[zone_mines.period == q.label]
            day = q.middle.isoformat()  # the map's date switch and chart place a period at its middle
            feats = [
                {
                    "type": "Feature",
                    "properties": {**r.drop("geometry").to_dict(), "date": q.label, "obs_id": q.label},
                    "geometry": r.geometry.__geo_interface__,
                }
                for _, r in sel.iterrows()
            ]
            area_ha = float(sel.area_ha.sum())
            obs.append(
                {
                    "obs_id": q.label,
                    "date": day,
                    "grid": canvas,
                    "rgb": rgb,
                    "q": prob,
                    "features": feats,
                    "area_ha": area_ha,
                }
            )
        zone_change = change[change.chunk.str.split(",").str[0].isin({c.chunk_id for c in zc})]
        for a, b in zip(periods, periods[1:]):
            sel = zone_change[zone_change.to == b.label]
            feats = [
                {
                    "type": "Feature",
                    "properties": {"change": r.change, "area_ha": r.area_ha, "from": a.label, "to": b.label},
                    "geometry": r.geometry.__geo_interface__,
                }
                for _, r in sel.iterrows()
            ]
            ha = {name: float(sel[sel.change == name].area_ha.sum()) for name in monitoring.CHANGE_NAMES.values()}
            changes.append(
                {"site_id": site, "from": a.middle.isoformat(), "to": b.middle.isoformat(), **ha, "features": feats}
            )
        by_site[site] = obs
    webmap.map_report(by_site, changes, {}, synthetic, path, alerts=alert_layers)


def _canvas(chunks: list[Chunk]) -> tuple[Grid, int]:
    """A coarser grid over the chunks of one zone for the map's image overlays (longest side ≤ 4096 px)."""
    from rasterio.transform import from_origin

    left = min(c.square.bounds[0] for c in chunks)
    bottom = min(c.square.bounds[1] for c in chunks)
    right = max(c.square.bounds[2] for c in chunks)
    top = max(c.square.bounds[3] for c in chunks)
    size = int(round(chunks[0].size_m / RES_M))
    longest = max(right - left, top - bottom) / RES_M
    f = next(d for d in range(1, size + 1) if size % d == 0 and longest / d <= 4096)
    res = RES_M * f
    return Grid(
        chunks[0].crs,
        from_origin(left, top, res, res),
        int(round((top - bottom) / res)),
        int(round((right - left) / res)),
    ), f


def _draw(
    chunks: list[Chunk],
    canvas: Grid,
    f: int,
    period: Period,
    images: dict[tuple[str, str], tuple[Path, Path | None]],
    preds: dict[tuple[str, str], Path],
    halo: int,
) -> tuple[np.ndarray, np.ndarray]:
    """True colour (H, W, 3) and probability (uint8) of one period on the canvas, chunk by chunk."""
    from sandmine.report import true_colour

    rgb = np.full((3, canvas.height, canvas.width), np.nan, np.float32)
    prob = np.zeros((canvas.height, canvas.width), np.uint8)
    for c in chunks:
        n = c.grid.height // f
        x = int(round((c.square.bounds[0] - canvas.bounds[0]) / canvas.res_m))
        y = int(round((canvas.bounds[3] - c.square.bounds[3]) / canvas.res_m))
        img, _ = images[(c.chunk_id, period.label)]
        with ImageReader(img) as reader:
            names: list[str] = [b for b in ("B4", "B3", "B2") if b in reader.bands] or reader.bands[:1]
        with ImageReader(img, names) as reader:
            data = reader.read_rows(halo, halo + c.grid.height, halo, halo + c.grid.width)
        block = data.reshape(len(names), n, f, n, f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks (nodata) stay NaN
            rgb[: len(names), y : y + n, x : x + n] = np.nanmean(block, axis=(2, 4))
        q = read_inner(preds[(c.chunk_id, period.label)], halo, c.grid.height) * c.aoi_mask()
        prob[y : y + n, x : x + n] = q.reshape(n, f, n, f).mean(axis=(1, 3)).round().astype(np.uint8)
    return true_colour(rgb, ["B4", "B3", "B2"], keep_nodata=True), prob  # no data (NaN): transparent on the map
