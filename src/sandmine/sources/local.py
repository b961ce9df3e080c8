"""Local sources: the user's own GeoTIFFs, Sentinel-2 products as ESA delivers them (SAFE
folders), and label polygons as GeoJSON files drawn in any CRS (e.g. in QGIS).

A SAFE product has one JPEG 2000 file per band at 10, 20 or 60 m
(`GRANULE/*/IMG_DATA/R10m/*_B02_10m.jp2` for L2A, `GRANULE/*/IMG_DATA/*_B02.jp2` for L1C).
`stack_safe` resamples every band onto one 10 m grid (bilinear) in the band order asked for and
converts digital numbers to reflectance with the product's quantification value and offset
(`MTD_MSIL2A.xml` / `MTD_MSIL1C.xml`; processing baseline 04.00 and later subtract 1000).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

from sandmine.bands import CATALOGUE
from sandmine.errors import SandmineError
from sandmine.raster import Grid
from sandmine.sources.labelbox import Annotation, LabelRow

_BAND_FILE = re.compile(r"_(B\d[\dA])(?:_(\d+)m)?\.jp2$")


def safe_bands(safe: Path) -> dict[str, list[Path]]:
    """The band files of a SAFE folder, by band name (B8A, B02 -> B2), finest resolution first."""
    if not safe.is_dir():
        raise SandmineError("SAFE folder not found", str(safe))
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(safe.glob("GRANULE/*/IMG_DATA/**/*.jp2")):
        m = _BAND_FILE.search(path.name)
        if not m:
            continue
        name = m.group(1)
        name = name if name == "B8A" else f"B{int(name[1:])}"
        res = int(m.group(2)) if m.group(2) else CATALOGUE[name].resolution_m
        found.setdefault(name, []).append((res, path))
    return {k: [p for _, p in sorted(v)] for k, v in found.items()}


def quantification(safe: Path) -> tuple[float, dict[str, float]]:
    """(quantification value, offset per band name) from the product metadata.

    Defaults when the metadata is absent: 10000 and no offset (baseline before 04.00).
    """
    mtd = next(iter(sorted(safe.glob("MTD_MSIL*.xml"))), None)
    if mtd is None:
        return 10_000.0, {}
    root = ET.parse(mtd).getroot()
    value = 10_000.0
    offsets: dict[str, float] = {}
    for el in root.iter():
        tag = el.tag.split("}")[-1]
        if tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and el.text:
            value = float(el.text)
        if tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text:
            band_id = int(el.get("band_id", "-1"))
            order = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
            if 0 <= band_id < len(order):
                offsets[order[band_id]] = float(el.text)
    return value, offsets


def stack_safe(safe: Path, bands: list[str], grid: Grid | None = None) -> tuple[np.ndarray, Grid]:
    """(C, H, W) float32 reflectance of `bands` on `grid` (default: the product's 10 m grid of B2).

    Raises:
        SandmineError: the folder lacks a band asked for (names the band and the folder).
    """
    files = safe_bands(safe)
    missing = [b for b in bands if b not in files]
    if missing:
        raise SandmineError(
            f"SAFE product has no file for band(s) {missing} (it has {sorted(files)})",
            str(safe),
            "download the complete product, or drop those bands from 'bands'",
        )
    if grid is None:
        ref = files.get("B2", files[bands[0]])[0]
        with rasterio.open(ref) as src:
            if abs(src.transform.a - 10) > 1e-6:
                raise SandmineError("the reference band is not at 10 m", str(ref))
            grid = Grid(src.crs, src.transform, src.height, src.width)
    value, offsets = quantification(safe)
    out = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
    for i, band in enumerate(bands):
        with rasterio.open(files[band][0]) as src:
            dn = src.read(1).astype(np.float32)
            dn[dn == 0] = np.nan  # 0 is nodata in Sentinel-2 products
            _resample(dn, Grid(src.crs, src.transform, src.height, src.width), out[i], grid)
        out[i] = (out[i] + offsets.get(band, 0.0)) / value
    return out, grid


def read_geotiff(path: Path, bands: list[str], grid: Grid) -> np.ndarray:
    """A user's GeoTIFF with named bands, in export units, resampled onto `grid` (NaN nodata)."""
    from sandmine.raster import ImageReader

    with ImageReader(path, bands) as reader:
        data = reader.read_rows(0, reader.grid.height)
        src_grid = reader.grid
    if src_grid == grid:
        return data
    out = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
    for i in range(len(bands)):
        _resample(data[i], src_grid, out[i], grid)
    return out


def _resample(src: np.ndarray, src_grid: Grid, dst: np.ndarray, grid: Grid) -> None:
    """Bilinear resampling of one band onto `grid`, NaN as nodata on both sides."""
    reproject(
        src,
        dst,
        src_transform=src_grid.transform,
        src_crs=src_grid.crs,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        resampling=Resampling.bilinear,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )


def geojson_labels(path: Path, obs_id: str) -> LabelRow:
    """Polygons of one observation from a GeoJSON file in any CRS, as a label row in EPSG:4326.

    Each feature's `class` (or `label`) property names its class (default `mine`) and an
    optional `confidence` (low/medium/high) is carried through.
    """
    import geopandas as gpd

    if path.exists() and path.stat().st_size == 0:
        raise SandmineError(
            "label file is empty",
            str(path),
            "write a GeoJSON FeatureCollection (with no features if there is no mining), or remove the file",
        )
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - any reader error is the user's file
        raise SandmineError(
            f"not a readable vector file ({exc})", str(path), "save it as GeoJSON (e.g. from QGIS) with its CRS"
        ) from exc
    row = LabelRow(obs_id, "done")
    if frame.empty:
        return row
    if frame.crs is None:
        raise SandmineError(
            "label file has no CRS", str(path), "save it with its CRS (GeoJSON without one must be EPSG:4326 lon/lat)"
        )
    frame = frame.to_crs("EPSG:4326")
    for k, rec in enumerate(frame.itertuples()):
        geom = rec.geometry
        cls = str(getattr(rec, "class", None) or getattr(rec, "label", None) or "mine")
        conf = str(getattr(rec, "confidence", None) or "high")
        if geom is None or geom.is_empty:
            row.problems.append(f"feature {k} has no geometry; skipped")
            continue
        if not geom.is_valid:
            geom = geom.buffer(0)
            row.problems.append(f"feature {k} was self-intersecting; repaired")
        row.annotations.append(Annotation(cls, geom, conf, in_pixels=False))
    return row


def write_image(path: Path, data: np.ndarray, bands: list[str], grid: Grid, tags: dict[str, str]) -> None:
    """Write physical-unit bands as the pipeline's int16 COG (see `sources.stored`)."""
    from sandmine.raster import write_cog
    from sandmine.sources.stored import NODATA, store

    stored, scales = store(data, bands)
    write_cog(path, stored, grid, bands, tags, nodata=NODATA, scales=scales)


def import_observation(folder: Path, obs_id: str, bands: list[str], grid: Grid) -> tuple[np.ndarray, str]:
    """The bands of one observation from `folder/{obs_id}.SAFE` or `folder/{obs_id}.tif`, on `grid`."""
    safe, tif = folder / f"{obs_id}.SAFE", folder / f"{obs_id}.tif"
    if safe.is_dir():
        return stack_safe(safe, bands, grid)[0], "safe"
    if tif.exists():
        return read_geotiff(tif, bands, grid), "geotiff"
    raise SandmineError(
        f"no image for observation '{obs_id}'",
        str(folder),
        f"put {obs_id}.tif (bands named B2, B3, …) or the product folder {obs_id}.SAFE there",
    )
