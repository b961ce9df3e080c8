"""Median composite of STAC items on a site's grid: read lazily with odc-stac, SCL-masked, in the project's units."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from sandmine.core.raster import Grid
from sandmine.sources.stac.catalogue import S1_ASSETS, S2_ASSETS, SCL_ASSETS, StacSettings, asset_keys, scale_offset

log = logging.getLogger(__name__)


def configure_gdal(s: StacSettings) -> None:
    """GDAL's own retries with back-off for the byte-range reads (odc-stac applies them in every reading thread)."""
    import odc.stac

    odc.stac.configure_rio(
        cloud_defaults=True,  # GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR: no directory listing per file
        GDAL_HTTP_MAX_RETRY=str(s.retries),
        GDAL_HTTP_RETRY_DELAY=f"{s.backoff_s:g}",
        GDAL_HTTP_TIMEOUT=str(int(s.timeout_s)),
    )


def _lazy(item: Any, keys: dict[str, str], grid: Grid, s: StacSettings, resampling: dict[str, str]) -> Any:
    """One item's assets `keys` (project name -> asset key) as a Dask-backed Dataset on `grid`: only the
    tiles that overlap the grid are read, when computed."""
    import odc.stac
    from odc.geo.geobox import GeoBox

    box = GeoBox((grid.height, grid.width), grid.transform, grid.crs.to_wkt())
    return odc.stac.load(
        [item],
        bands=list(keys.values()),
        geobox=box,
        chunks={"x": s.chunk_px, "y": s.chunk_px},
        resampling=resampling,
        fail_on_error=True,
    )


def _physical(ds: Any, item: Any, key: str) -> Any:
    """A band of one item as float32 physical values (raster:bands scale/offset applied), NaN where no data."""
    import dask.array as da

    var = ds[key]
    raw = var.data[0]
    nodata = var.attrs.get("nodata")
    scale, offset = scale_offset(item, key)
    values = raw.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if nodata is not None and np.isfinite(nodata):
        values = da.where(raw == nodata, np.float32(np.nan), values)
    return values


def optical(items: list, bands: list[str], grid: Grid, s: StacSettings) -> tuple[Any, Any]:
    """(C, H, W) median reflectance of `bands` over the items' clear pixels, and CLOUD: the share of the
    items with data at a pixel whose SCL class is masked (0 clear … 1 always masked), both lazy."""
    import dask.array as da

    layers, masked, seen = [], [], []
    for item in items:
        keys = asset_keys(item, {b: S2_ASSETS[b] for b in bands} | {"SCL": SCL_ASSETS})
        resampling = {k: ("nearest" if b == "SCL" else "bilinear") for b, k in keys.items()}
        ds = _lazy(item, keys, grid, s, resampling)
        scl = ds[keys["SCL"]].data[0]
        has_data = scl != 0  # SCL 0: no data (outside the tile's footprint or a gap)
        bad = da.isin(scl, list(s.mask_classes)) | ~has_data
        if bands:
            refl = da.stack([_physical(ds, item, keys[b]) for b in bands])
            layers.append(da.where(bad[None], np.float32(np.nan), refl))
        masked.append(bad & has_data)
        seen.append(has_data)
    shape = (0, grid.height, grid.width)  # CLOUD alone needs no reflectance
    median = da.nanmedian(da.stack(layers).rechunk({0: -1}), axis=0) if layers else da.zeros(shape, np.float32)
    n_seen = da.stack(seen).sum(axis=0)
    cloud = da.where(n_seen > 0, da.stack(masked).sum(axis=0) / da.maximum(n_seen, 1), np.nan).astype(np.float32)
    return median, cloud


def backscatter(items: list, bands: list[str], grid: Grid, s: StacSettings) -> Any:
    """(C, H, W) median backscatter in dB of `bands` (VV, VH): linear power -> 10·log10, lazy."""
    import dask.array as da

    layers = []
    for item in items:
        keys = asset_keys(item, {b: S1_ASSETS[b] for b in bands})
        ds = _lazy(item, keys, grid, s, {k: "bilinear" for k in keys.values()})
        linear = da.stack([_physical(ds, item, keys[b]) for b in bands])
        positive = da.where(linear > 0, linear, np.float32(np.nan))
        layers.append((10.0 * da.log10(positive)).astype(np.float32))
    return da.nanmedian(da.stack(layers).rechunk({0: -1}), axis=0)


def compute(parts: list[Any], s: StacSettings) -> list[np.ndarray]:
    """Compute the lazy parts together with `s.threads` reading threads (nanmedian's all-NaN warnings muted)."""
    import warnings

    import dask

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice encountered")
        warnings.filterwarnings("ignore", message="invalid value encountered in divide")
        return list(dask.compute(*parts, scheduler="threads", num_workers=s.threads))
