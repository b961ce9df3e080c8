"""Raster grids, CRS helpers, reading images and writing Cloud-Optimized GeoTIFFs atomically."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar, get_args

import numpy as np
import rasterio
import rasterio.shutil
import rasterio.windows
import shapely
from pyproj import CRS as PyprojCRS
from pyproj import Geod, Transformer
from rasterio import features
from rasterio.crs import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine, from_origin
from shapely.affinity import affine_transform
from shapely.geometry.base import BaseGeometry

from sandmine.core.bands import CATALOGUE, Conversion, canonical, file_units, naming_advice
from sandmine.core.errors import SandmineError
from sandmine.core.files import atomic_path, disk_full, temp_name

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        """A pixel's area in hectares; refuses a CRS whose units are not metres (degrees, feet)."""
        units = crs_units(self.crs)
        if units != "metre":
            raise SandmineError(
                f"pixel areas cannot be computed in a CRS in {units} ({self.crs})",
                "image grid",
                "reproject the image to its UTM zone at 10 m (gdalwarp -t_srs EPSG:326NN -tr 10 10 -r bilinear)",
            )
        return abs(self.transform.a * self.transform.e) / 10_000.0


@cache
def _crs_units(wkt: str) -> str:
    crs = PyprojCRS.from_user_input(wkt)
    if crs.is_geographic:
        return "degrees"
    names = {a.unit_name for a in crs.axis_info[:2]}
    return "metre" if names == {"metre"} else " / ".join(sorted(names)) or "unknown units"


def crs_units(crs: CRS) -> str:
    """`metre`, `degrees`, or the name of the horizontal unit of a CRS (e.g. `US survey foot`)."""
    return _crs_units(crs.to_wkt())


AREA_TOLERANCE = 0.02  # a pixel's area in the CRS may differ from its area on the ground by this (UTM: < 1 %)


def ground_pixel_m(grid: Grid) -> tuple[float, float]:
    """Width and height on the ground, in metres (WGS 84 ellipsoid), of the pixel at the grid's centre."""
    t = grid.transform
    col, row = grid.width / 2, grid.height / 2
    corners = [t @ (col, row), t @ (col + 1, row), t @ (col, row + 1)]
    to_ll = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform([c[0] for c in corners], [c[1] for c in corners])
    geod = Geod(ellps="WGS84")
    width = geod.inv(lon[0], lat[0], lon[1], lat[1])[2]
    height = geod.inv(lon[0], lat[0], lon[2], lat[2])[2]
    return float(width), float(height)


def warp_command(grid: Grid, path: str, res_m: float = 10.0) -> str:
    """The gdalwarp command that puts the image `path` (on `grid`) on its UTM zone at `res_m`."""
    t = grid.transform
    x, y = t @ (grid.width / 2, grid.height / 2)
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(x, y)
    epsg = utm_crs(lon, lat).to_epsg()
    out = Path(path).with_name(f"{Path(path).stem}_utm{Path(path).suffix or '.tif'}")
    return f"gdalwarp -t_srs EPSG:{epsg} -tr {res_m:g} {res_m:g} -r bilinear {path} {out}"


def check_metric_grid(grid: Grid, where: str) -> None:
    """Refuse an image whose pixel areas are not ground areas: a CRS in degrees or feet, or one that
    stretches areas (e.g. Web Mercator away from the equator). The minimum mapping unit, the masks'
    cleaning and every area in hectares count pixels of the image's own grid.

    Raises:
        SandmineError: naming the CRS and giving the gdalwarp command to its UTM zone (from its centre).
    """
    units = crs_units(grid.crs)
    name = grid.crs.to_string()
    if units != "metre":
        unit = "degrees" if units == "degrees" else f"units of {units}"
        what = f"the image's CRS ({name}) is in {unit}, not metres: pixel areas and the minimum mapping unit "
        what += f"would be counted in {'degrees' if units == 'degrees' else units}²"
    else:
        gx, gy = ground_pixel_m(grid)
        rx, ry = abs(grid.transform.a), abs(grid.transform.e)
        if abs(gx * gy / (rx * ry) - 1) <= AREA_TOLERANCE:
            return
        what = (
            f"the image's CRS ({name}) does not keep areas here: a pixel of {rx:g} × {ry:g} CRS metres is "
            f"{gx:.1f} × {gy:.1f} m on the ground, so every area would be off by {rx * ry / (gx * gy) - 1:+.0%}"
        )
    raise SandmineError(
        what, where, f"reproject it to its UTM zone at the model's 10 m first: {warp_command(grid, where)}"
    )


def to_crs(geom: BaseGeometry, src: CRS | str, dst: CRS | str) -> BaseGeometry:
    """`geom` reprojected from `src` to `dst` (lon/lat axis order for geographic CRSs)."""
    t = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def pixels_to_map(geom: BaseGeometry, transform: Affine) -> BaseGeometry:
    """`geom` in pixel coordinates (x = column, y = row) to map coordinates of `transform`."""
    t = transform
    return affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])


def rasterize(
    geoms: Sequence[BaseGeometry],
    grid: Grid,
    *,
    value: float = 1,
    all_touched: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels of `geoms` (in the grid's CRS) on `grid`, the one rasteriser of polygons on an image grid.

    Without `out`: a new (H, W) bool mask. With `out` ((H, W), any dtype): `value` is burnt into it
    in place and `out` is returned; later geometries overwrite earlier ones. `all_touched` picks the
    pixel rule (false: pixels whose centre lies inside; true: every pixel a geometry touches).
    Empty geometries draw nothing.
    """
    drawn = [(g, value) for g in geoms if not g.is_empty]
    if out is None:
        mask = np.zeros((grid.height, grid.width), np.uint8)
        if drawn:
            features.rasterize(drawn, out=mask, transform=grid.transform, all_touched=all_touched)
        return mask > 0
    if drawn:
        features.rasterize(drawn, out=out, transform=grid.transform, all_touched=all_touched)
    return out


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS that contains (lon, lat)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


ZONE_EDGE_DEG = 1e-9  # a longitude this close to a zone boundary is on it (float noise in a file's coordinates)


def utm_zones(west: float, east: float) -> list[int]:
    """The UTM zone numbers (1–60, west to east) that a longitude span [west, east] lies in.

    Zones are half-open bands [start, start + 6°) that share their edges: a span whose east edge is a
    zone boundary lies in the zone west of it, one whose west edge is a boundary in the zone east of it
    (it touches the neighbour along a line only). 180° E is the east edge of zone 60.
    """
    first = math.floor((west + 180.0) / 6.0 + ZONE_EDGE_DEG)
    last = max(first, math.ceil((east + 180.0) / 6.0 - ZONE_EDGE_DEG) - 1)
    return [min(max(z, 0), 59) + 1 for z in range(first, last + 1)]


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


OverviewResampling = Literal["mode", "nearest", "average"]
"""How a COG's overviews summarise blocks of pixels: `mode` (the most frequent value) and `nearest` keep
class values; `average` is for continuous values (reflectance, backscatter, probabilities)."""


def _cog_options(dtype: str, resampling: OverviewResampling) -> dict[str, object]:
    """GDAL COG-driver creation options shared by every COG the pipeline writes."""
    if resampling not in get_args(OverviewResampling):
        raise ValueError(f"overview resampling {resampling!r} is not one of {get_args(OverviewResampling)}")
    return {
        "compress": "DEFLATE",
        "predictor": 2 if np.dtype(dtype).kind in "iu" else 3,
        "blocksize": 256,
        # GDAL's default for the COG driver is cubic, which invents classes (0/1/255 reads back 127)
        "overview_resampling": resampling.upper(),
        "BIGTIFF": "IF_SAFER",
    }


def write_cog(
    path: str | Path,
    data: np.ndarray,
    grid: Grid,
    band_names: list[str] | None = None,
    tags: dict[str, str] | None = None,
    nodata: float | None = None,
    scales: list[float] | None = None,
    resampling: OverviewResampling = "mode",
) -> None:
    """Write (C, H, W) or (H, W) `data` as a tiled, compressed COG, atomically.

    Band descriptions name each band so readers select bands by name, not position;
    `scales` (value = stored × scale) lets integer files carry physical units.
    `resampling` builds the overviews: the default `mode` keeps a mask's classes (each overview pixel
    is the most frequent class below it, so areas look right zoomed out); pass `average` for
    reflectance, backscatter and probabilities. Nodata pixels are left out of both.
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
        "nodata": nodata,
        **_cog_options(arr.dtype.name, resampling),
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


def band_names(descriptions: Sequence[str | None]) -> list[str]:
    """A file's band names from its band descriptions, spelt as the catalogue does (`B02` is `B2`)."""
    return [canonical(d) if d else "" for d in descriptions]


def read_grid(path: str | Path) -> Grid:
    """The grid of a raster file, without reading pixels."""
    with _open(path) as src:
        return Grid(src.crs, src.transform, src.height, src.width)


class ImageReader:
    """An open image whose named bands are read a block of rows at a time (float32, NaN nodata).

    Values come in export units (reflectance 0–1, dB): a band's scale/offset tags are applied, and
    reflectance or dB bands without a scale tag have their units decided once per file from the data
    type and a sample of values (`bands.file_units`): Sentinel-2 digital numbers become reflectance and
    Sentinel-1 linear power becomes dB, with one log line naming the file and what was done.
    Use as a context manager; `read_image` reads everything at once through it.

    Raises:
        SandmineError: unreadable file, no CRS, unnamed bands, a requested band missing, or values in
            units that are neither (e.g. an 8-bit rendering).
    """

    def __init__(self, path: str | Path, bands: list[str] | None = None) -> None:
        self.path = str(path)
        self._src = _open(path)
        src = self._src
        names = band_names(src.descriptions)
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
        twice = sorted({n for n in names if n and names.count(n) > 1 and (bands is None or n in bands)})
        if twice:
            src.close()
            descriptions = list(src.descriptions)
            raise SandmineError(
                f"band(s) {twice} are described twice (descriptions {descriptions}; B02 and B2 are one band)",
                self.path,
                "keep one band of each name, or name them apart",
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
                    f"export those bands or change 'model.bands'{naming_advice(names)}",
                )
            idx = [names.index(b) for b in bands]
        self._idx = idx
        self._scale = np.array([src.scales[i] for i in idx], np.float32)[:, None, None]
        self._offset = np.array([src.offsets[i] for i in idx], np.float32)[:, None, None]
        try:
            units = _file_units(src, names, self.path)
        except RasterioIOError as exc:
            src.close()
            raise SandmineError(f"cannot read pixels ({exc})", self.path, "re-export it") from exc
        except BaseException:
            src.close()
            raise
        self._convert = [(k, units[i]) for k, i in enumerate(idx) if i in units]
        self.bands = [names[i] for i in idx]
        self.grid = Grid(src.crs, src.transform, src.height, src.width)
        self.tags = dict(src.tags())

    def read_rows(self, row0: int, row1: int, col0: int = 0, col1: int | None = None) -> np.ndarray:
        """(C, row1 - row0, col1 - col0) float32 in export units, NaN where there is no data."""
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
            for k, conversion in self._convert:
                conversion.apply(data[k], raw[k])
        except RasterioIOError as exc:
            raise SandmineError(f"cannot read pixels ({exc})", self.path, "re-export it") from exc
        return data

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SAMPLE_PX = 256  # a file's units are decided from at most SAMPLE_PX² pixels per band
_DN_TAGS = ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")  # ESA's names (MTD_MSIL2A.xml / MTD_MSIL1C.xml)


def _file_units(src: rasterio.DatasetReader, names: list[str], where: str) -> dict[int, Conversion]:
    """Per band index, how values become export units, for reflectance and dB bands without a scale."""
    todo = [
        i
        for i, n in enumerate(names)
        if n in CATALOGUE and CATALOGUE[n].unit in ("reflectance", "dB") and src.scales[i] == 1.0
    ]
    if not todo:
        return {}  # the pipeline's own images carry scales: they are read exactly as before
    samples = _sample(src, todo)
    tags = {k.upper(): v for k, v in src.tags().items()}
    quantification = _number(tags.get("BOA_QUANTIFICATION_VALUE") or tags.get("QUANTIFICATION_VALUE")) or 10_000.0
    offsets = {}
    for i in todo:
        if CATALOGUE[names[i]].unit == "reflectance" and src.offsets[i] == 0:
            offset = _dn_offset(tags, {k.upper(): v for k, v in src.tags(i + 1).items()}, names[i])
            if offset:
                offsets[names[i]] = offset
    units, message = file_units(
        {names[i]: s for i, s in zip(todo, samples)}, src.dtypes[todo[0]], where, offsets, quantification
    )
    if message:
        log.info("%s: %s", where, message)
    return {i: units[names[i]] for i in todo if names[i] in units}


def _sample(src: rasterio.DatasetReader, idx: list[int]) -> list[np.ndarray]:
    """Valid values (scale and offset applied; an integer file's 0s left out) of bands `idx`, sampled.

    From an overview or a decimated read where the file has overviews or is small, else from 8 × 8
    windows of 32 px spread over it: a few blocks per band, never the whole of a large raster.
    """
    bands, h, w = [i + 1 for i in idx], src.height, src.width
    if src.overviews(bands[0]) or h * w <= SAMPLE_PX * SAMPLE_PX:
        shape = (len(bands), min(h, SAMPLE_PX), min(w, SAMPLE_PX))
        reads = [src.read(bands, out_shape=shape, resampling=Resampling.nearest, masked=True)]
    else:
        size = 32
        rows = np.linspace(0, max(h - size, 0), 8).astype(int)
        cols = np.linspace(0, max(w - size, 0), 8).astype(int)
        win = [rasterio.windows.Window(int(c), int(r), min(size, w), min(size, h)) for r in rows for c in cols]
        reads = [src.read(bands, window=x, masked=True) for x in win]
    integer = np.dtype(src.dtypes[idx[0]]).kind in "iu"
    out = []
    for k, i in enumerate(idx):
        raw = np.concatenate([np.ma.compressed(r[k]) for r in reads])
        if integer:
            raw = raw[raw != 0]  # 0 is nodata in Sentinel-2 digital numbers
        values = raw.astype(np.float64) * src.scales[i] + src.offsets[i]
        out.append(values[np.isfinite(values)])
    return out


def _dn_offset(tags: dict[str, str], band_tags: dict[str, str], name: str) -> float | None:
    """The digital-number offset a file records for band `name`: a band tag, then `BOA_ADD_OFFSET_B02`-style
    or `BOA_ADD_OFFSET_B2`-style file tags, then one file tag for all bands."""
    code = name if name == "B8A" else f"B{int(name[1:]):02d}"
    found = [band_tags.get(t) for t in _DN_TAGS]
    found += [tags.get(f"{t}_{b}") for t in _DN_TAGS for b in (code, name)] + [tags.get(t) for t in _DN_TAGS]
    return _number(next((v for v in found if v), None))


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def read_image(path: str | Path, bands: list[str] | None = None) -> Image:
    """Read an image, optionally only the named bands, as float32 with NaN for nodata.

    Raises:
        SandmineError: unreadable file, no CRS, unnamed bands, or a requested band missing.
    """
    with ImageReader(path, bands) as reader:
        return Image(reader.read_rows(0, reader.grid.height), reader.bands, reader.grid, reader.tags)


def has_valid_pixel(path: str | Path, rows: int = 256) -> bool:
    """Whether any band of an image has data anywhere (read a block of rows at a time, stopping early)."""
    with ImageReader(path) as reader:
        h = reader.grid.height
        return any(np.isfinite(reader.read_rows(r, min(r + rows, h))).any() for r in range(0, h, rows))


class CogWriter:
    """Write a single-band raster a block of rows at a time, ending as a COG (atomically).

    Rows go to a tiled GeoTIFF beside the target; `close()` adds overviews by copying it to a
    COG (GDAL streams the copy), then renames. Memory stays at one block of rows.
    `resampling` builds the overviews as in `write_cog`: `mode` (default) for classes, `average`
    for probabilities. `nodata` marks pixels that are not data (left out of the overviews).
    """

    def __init__(
        self,
        path: str | Path,
        grid: Grid,
        dtype: str,
        band_name: str,
        tags: dict[str, str] | None = None,
        resampling: OverviewResampling = "mode",
        nodata: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.grid = grid
        self._cog_options = _cog_options(dtype, resampling)
        self._tmp = temp_name(self.path, ".rows.tif")  # unique: two runs never write one temporary file
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._dst = self._guard(
            lambda: rasterio.open(
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
                nodata=nodata,
            )
        )
        self._dst.set_band_description(1, band_name)
        if tags:
            self._dst.update_tags(**tags)

    def write_rows(self, row0: int, block: np.ndarray) -> None:
        window = rasterio.windows.Window(0, row0, self.grid.width, block.shape[0])
        self._guard(lambda: self._dst.write(block, 1, window=window))

    def _guard(self, write: Callable[[], T]) -> T:
        """`write()`, a full disk reported as a SandmineError naming the output and the free space."""
        try:
            return write()
        except Exception as exc:  # GDAL's write errors come as OSErrors and as CPLE_* errors
            full = disk_full(self.path, exc)
            if full is None:
                raise
            raise full from exc

    def close(self) -> None:
        try:
            self._guard(self._dst.close)  # GDAL flushes its last blocks here
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        try:
            with atomic_path(self.path) as out:
                rasterio.shutil.copy(self._tmp, out, driver="COG", **self._cog_options)
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
