"""Raster grids, CRS helpers, reading images and writing Cloud-Optimized GeoTIFFs atomically."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import rasterio.windows
import shapely
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine, from_origin
from shapely.affinity import affine_transform
from shapely.geometry.base import BaseGeometry

from sandmine.errors import SandmineError
from sandmine.files import atomic_path


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and size (rows, cols)."""

    crs: CRS
    transform: Affine
    height: int
    width: int

    @property
    def res_m(self) -> float:
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        left, top = self.transform.c, self.transform.f
        return left, top - self.height * self.res_m, left + self.width * self.res_m, top

    @property
    def pixel_area_ha(self) -> float:
        return self.res_m * self.res_m / 10_000.0


def to_crs(geom: BaseGeometry, src: CRS | str, dst: CRS | str) -> BaseGeometry:
    """`geom` reprojected from `src` to `dst` (lon/lat axis order for geographic CRSs)."""
    t = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def pixels_to_map(geom: BaseGeometry, transform: Affine) -> BaseGeometry:
    """`geom` in pixel coordinates (x = column, y = row) to map coordinates of `transform`."""
    t = transform
    return affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS that contains (lon, lat)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def grid_for_bounds(bounds_4326: tuple[float, float, float, float], res_m: float = 10.0) -> Grid:
    """The UTM grid (zone of the centre) covering a lon/lat box, snapped to `res_m`."""
    west, south, east, north = bounds_4326
    crs = utm_crs((west + east) / 2, (south + north) / 2)
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    xs, ys = to_utm.transform([west, east, west, east], [south, south, north, north])
    left = math.floor(min(xs) / res_m) * res_m
    right = math.ceil(max(xs) / res_m) * res_m
    bottom = math.floor(min(ys) / res_m) * res_m
    top = math.ceil(max(ys) / res_m) * res_m
    return Grid(
        crs,
        from_origin(left, top, res_m, res_m),
        int(round((top - bottom) / res_m)),
        int(round((right - left) / res_m)),
    )


def write_cog(
    path: str | Path,
    data: np.ndarray,
    grid: Grid,
    band_names: list[str] | None = None,
    tags: dict[str, str] | None = None,
    nodata: float | None = None,
    scales: list[float] | None = None,
) -> None:
    """Write (C, H, W) or (H, W) `data` as a tiled, compressed COG, atomically.

    Band descriptions name each band so readers select bands by name, not position;
    `scales` (value = stored × scale) lets integer files carry physical units.
    """
    arr = data[None] if data.ndim == 2 else data
    if arr.shape[1:] != (grid.height, grid.width):
        raise ValueError(f"array {arr.shape[1:]} does not match grid {(grid.height, grid.width)}")
    profile = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "compress": "DEFLATE",
        "predictor": 2 if arr.dtype.kind in "iu" else 3,
        "blocksize": 256,
        "nodata": nodata,
        "BIGTIFF": "IF_SAFER",
    }
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(arr)
            for i, name in enumerate(band_names or []):
                dst.set_band_description(i + 1, name)
            if scales:
                dst.scales = tuple(scales)
            if tags:
                dst.update_tags(**tags)


@dataclass
class Image:
    """An image read from disk: (C, H, W) float32 data, band names, grid and tags."""

    data: np.ndarray
    bands: list[str]
    grid: Grid
    tags: dict[str, str]


def read_grid(path: str | Path) -> Grid:
    """The grid of a raster file, without reading pixels."""
    with _open(path) as src:
        return Grid(src.crs, src.transform, src.height, src.width)


class ImageReader:
    """An open image whose named bands are read a block of rows at a time (float32, NaN nodata).

    Use as a context manager; `read_image` reads everything at once through it.

    Raises:
        SandmineError: unreadable file, no CRS, unnamed bands, or a requested band missing.
    """

    def __init__(self, path: str | Path, bands: list[str] | None = None) -> None:
        self.path = str(path)
        self._src = _open(path)
        src = self._src
        names = [d or "" for d in src.descriptions]
        if src.crs is None:
            src.close()
            raise SandmineError("image has no CRS", self.path, "write it with its UTM CRS (e.g. gdal_edit -a_srs)")
        if bands is not None and not all(names):
            src.close()
            raise SandmineError(
                "bands have no descriptions, so they cannot be selected by name",
                self.path,
                "set band descriptions (B2, B3, …, VV, VH) when exporting",
            )
        if bands is None:
            idx = list(range(len(names)))
        else:
            missing = [b for b in bands if b not in names]
            if missing:
                src.close()
                raise SandmineError(
                    f"band(s) {missing} not in image (it has {names})",
                    self.path,
                    "export those bands or change 'model.bands'",
                )
            idx = [names.index(b) for b in bands]
        self._idx = idx
        self._scale = np.array([src.scales[i] for i in idx], np.float32)[:, None, None]
        self._offset = np.array([src.offsets[i] for i in idx], np.float32)[:, None, None]
        self.bands = [names[i] for i in idx]
        self.grid = Grid(src.crs, src.transform, src.height, src.width)
        self.tags = dict(src.tags())

    def read_rows(self, row0: int, row1: int, col0: int = 0, col1: int | None = None) -> np.ndarray:
        """(C, row1 - row0, col1 - col0) float32 in physical units, NaN where there is no data."""
        col1 = self.grid.width if col1 is None else col1
        window = rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)
        src, bands = self._src, [i + 1 for i in self._idx]
        try:
            raw = src.read(bands, window=window)
            data = raw.astype(np.float32)
            data *= self._scale
            data += self._offset
            nodata = [src.nodatavals[i] for i in self._idx]
            if any(v is not None and not np.isnan(v) for v in nodata):
                for k, v in enumerate(nodata):
                    if v is not None and not np.isnan(v):
                        data[k][raw[k] == v] = np.nan
            elif any(MaskFlags.per_dataset in src.mask_flag_enums[i] for i in self._idx):
                data[:, src.read_masks(bands[0], window=window) == 0] = np.nan
        except RasterioIOError as exc:
            raise SandmineError(f"cannot read pixels ({exc})", self.path, "re-export it") from exc
        return data

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_image(path: str | Path, bands: list[str] | None = None) -> Image:
    """Read an image, optionally only the named bands, as float32 with NaN for nodata.

    Raises:
        SandmineError: unreadable file, no CRS, unnamed bands, or a requested band missing.
    """
    with ImageReader(path, bands) as reader:
        return Image(reader.read_rows(0, reader.grid.height), reader.bands, reader.grid, reader.tags)


class CogWriter:
    """Write a single-band raster a block of rows at a time, ending as a COG (atomically).

    Rows go to a tiled GeoTIFF beside the target; `close()` adds overviews by copying it to a
    COG (GDAL streams the copy), then renames. Memory stays at one block of rows.
    """

    def __init__(
        self, path: str | Path, grid: Grid, dtype: str, band_name: str, tags: dict[str, str] | None = None
    ) -> None:
        self.path = Path(path)
        self.grid = grid
        self._tmp = self.path.with_name(f".tmp-{self.path.name}.rows.tif")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._dst = rasterio.open(
            self._tmp,
            "w",
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            count=1,
            dtype=dtype,
            crs=grid.crs,
            transform=grid.transform,
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="DEFLATE",
            BIGTIFF="IF_SAFER",
        )
        self._dst.set_band_description(1, band_name)
        if tags:
            self._dst.update_tags(**tags)

    def write_rows(self, row0: int, block: np.ndarray) -> None:
        window = rasterio.windows.Window(0, row0, self.grid.width, block.shape[0])
        self._dst.write(block, 1, window=window)

    def close(self) -> None:
        self._dst.close()
        try:
            with atomic_path(self.path) as out:
                rasterio.shutil.copy(
                    self._tmp, out, driver="COG", compress="DEFLATE", predictor=2, blocksize=256, BIGTIFF="IF_SAFER"
                )
        finally:
            self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        self._dst.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> CogWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_valid(path: str | Path) -> np.ndarray:
    """(H, W) bool: pixels where every band has data."""
    with _open(path) as src:
        return np.asarray(src.dataset_mask()) > 0


def read_mask(path: str | Path, grid: Grid | None = None) -> np.ndarray:
    """Read a single-band uint8 mask, checking it lies on `grid` when given."""
    with _open(path) as src:
        if grid is not None and (
            (src.height, src.width) != (grid.height, grid.width) or src.transform != grid.transform
        ):
            raise SandmineError("mask is not on the image grid", str(path), "re-run the stage that wrote it")
        return np.asarray(src.read(1))


def _open(path: str | Path) -> rasterio.DatasetReader:
    if not Path(path).exists():
        raise SandmineError("file not found", str(path))
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise SandmineError(f"not a readable raster ({exc})", str(path), "re-export or re-download it") from exc
