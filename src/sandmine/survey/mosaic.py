"""VRT mosaics of the chunks of one zone, and their COG copies."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from xml.sax.saxutils import escape

from rasterio.transform import from_origin

from sandmine.core.files import atomic_path
from sandmine.core.raster import Grid, OverviewResampling
from sandmine.survey.chunks import RES_M, Zone

log = logging.getLogger(__name__)


def write_vrt(path: Path, sources: list[tuple[Path, Grid]], band_name: str, nodata: int | None) -> Grid:
    """A GDAL VRT mosaic of single-band uint8 rasters on one CRS and 10 m lattice (chunks of one zone).

    Source paths are written relative to the VRT, so the folder can be moved (and opened in QGIS)
    as a whole. Returns the mosaic's grid.
    """
    crs = sources[0][1].crs
    lefts = [g.bounds[0] for _, g in sources]
    tops = [g.bounds[3] for _, g in sources]
    rights = [g.bounds[2] for _, g in sources]
    bottoms = [g.bounds[1] for _, g in sources]
    left, top = min(lefts), max(tops)
    width = int(round((max(rights) - left) / RES_M))
    height = int(round((top - min(bottoms)) / RES_M))
    grid = Grid(crs, from_origin(left, top, RES_M, RES_M), height, width)
    lines = [
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
        f"  <SRS>{escape(crs.to_wkt())}</SRS>",
        f"  <GeoTransform>{left!r}, {RES_M!r}, 0.0, {top!r}, 0.0, {-RES_M!r}</GeoTransform>",
        '  <VRTRasterBand dataType="Byte" band="1">',
        f"    <Description>{escape(band_name)}</Description>",
    ]
    if nodata is not None:
        lines.append(f"    <NoDataValue>{nodata}</NoDataValue>")
    for src, g in sorted(sources, key=lambda s: str(s[0])):
        if g.crs != crs:
            raise ValueError(f"{src} is not in the mosaic's CRS")
        x = int(round((g.bounds[0] - left) / RES_M))
        y = int(round((top - g.bounds[3]) / RES_M))
        rel = os.path.relpath(src, path.parent)
        kind = "ComplexSource" if nodata is not None else "SimpleSource"
        lines += [
            f"    <{kind}>",
            f'      <SourceFilename relativeToVRT="1">{escape(rel)}</SourceFilename>',
            "      <SourceBand>1</SourceBand>",
            f'      <SrcRect xOff="0" yOff="0" xSize="{g.width}" ySize="{g.height}"/>',
            f'      <DstRect xOff="{x}" yOff="{y}" xSize="{g.width}" ySize="{g.height}"/>',
        ]
        if nodata is not None:
            lines.append(f"      <NODATA>{nodata}</NODATA>")
        lines.append(f"    </{kind}>")
    lines += ["  </VRTRasterBand>", "</VRTDataset>"]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return grid


def vrt_to_cog(
    vrt: Path,
    dst: Path,
    band_name: str,
    tags: dict[str, str],
    resampling: OverviewResampling,
    nodata: int | None = None,
    rows: int = 1024,
) -> None:
    """The VRT's mosaic as one COG, read and written a strip of rows at a time."""
    import rasterio
    import rasterio.windows

    from sandmine.core.raster import CogWriter, read_grid

    grid = read_grid(vrt)
    with rasterio.open(vrt) as src, CogWriter(dst, grid, "uint8", band_name, tags, resampling, nodata) as out:
        for r0 in range(0, grid.height, rows):
            h = min(rows, grid.height - r0)
            out.write_rows(r0, src.read(1, window=rasterio.windows.Window(0, r0, grid.width, h)))


def mosaics(files: dict[tuple[str, Zone, str], list[tuple[Path, Grid]]], folder: Path, tags: dict) -> list[Path]:
    """Per period and zone a VRT and a COG of the probability and of the mask."""
    from tqdm import tqdm

    written = []
    for (period, zone, kind), sources in tqdm(
        sorted(files.items(), key=lambda kv: (kv[0][0], kv[0][1].epsg, kv[0][2])), desc="mosaic", unit="file"
    ):
        stem = folder / f"{period}_{zone.name}_{kind}"
        band = "mine_probability" if kind == "probability" else "mine"
        write_vrt(stem.with_suffix(".vrt"), sources, band, None if kind == "probability" else 255)
        extra = (
            {"scale": "probability = value / 255"}
            if kind == "probability"
            else {"classes": "0=no mine, 1=mine, 255=outside the survey"}
        )
        vrt_to_cog(
            stem.with_suffix(".vrt"),
            stem.with_suffix(".tif"),
            band,
            {**tags, "period": period, "zone": zone.name, **extra},
            "average" if kind == "probability" else "mode",
            nodata=None if kind == "probability" else 255,
        )
        written += [stem.with_suffix(".vrt"), stem.with_suffix(".tif")]
    return written
