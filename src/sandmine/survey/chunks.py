"""Survey chunks: UTM-aligned squares of the river buffer with stable ids, one zone each."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, rasterize, to_crs
from sandmine.survey.rivers import River

log = logging.getLogger(__name__)


RES_M = 10.0


@dataclass(frozen=True)
class Zone:
    """A UTM zone and hemisphere: its CRS and its lon/lat band."""

    number: int
    north: bool

    @property
    def epsg(self) -> int:
        return (32600 if self.north else 32700) + self.number

    @property
    def name(self) -> str:
        return f"{self.number}{'N' if self.north else 'S'}"

    @property
    def band(self) -> BaseGeometry:
        """The zone's band in EPSG:4326 (the hemisphere's part)."""
        west = -180.0 + 6.0 * (self.number - 1)
        return box(west, 0.0 if self.north else -80.0, west + 6.0, 84.0 if self.north else 0.0)


def zones_of(geom: BaseGeometry, margin_deg: float) -> list[Zone]:
    """The UTM zones whose bands `geom` (EPSG:4326), grown by `margin_deg`, touches."""
    west, south, east, north = geom.bounds
    first = int(math.floor((west - margin_deg + 180.0) / 6.0)) + 1
    last = int(math.floor((east + margin_deg + 180.0) / 6.0)) + 1
    hemis = [h for h, ok in ((True, north + margin_deg >= 0), (False, south - margin_deg < 0)) if ok]
    out = []
    for n in range(max(1, first), min(60, last) + 1):
        for h in hemis:
            z = Zone(n, h)
            if geom.intersects(z.band.buffer(margin_deg)):
                out.append(z)
    return out


@dataclass(frozen=True)
class Chunk:
    """A square of the survey in one UTM zone. `aoi` (zone metres) is the part of the river
    buffer inside the chunk and inside the zone's band; `river_aois` splits it per river."""

    chunk_id: str
    zone: Zone
    col: int  # left = col * size_m
    row: int  # bottom = row * size_m
    size_m: float
    rivers: tuple[str, ...]
    aoi: BaseGeometry = field(hash=False, compare=False)
    river_aois: dict[str, BaseGeometry] = field(hash=False, compare=False, default_factory=dict)

    @property
    def crs(self) -> CRS:
        return CRS.from_epsg(self.zone.epsg)

    @property
    def square(self) -> BaseGeometry:
        left, bottom = self.col * self.size_m, self.row * self.size_m
        return box(left, bottom, left + self.size_m, bottom + self.size_m)

    @property
    def grid(self) -> Grid:
        n = int(round(self.size_m / RES_M))
        top = (self.row + 1) * self.size_m
        return Grid(self.crs, from_origin(self.col * self.size_m, top, RES_M, RES_M), n, n)

    def grid_with(self, halo_px: int) -> Grid:
        """The chunk's grid grown by `halo_px` on every side: images are exported and predicted with this
        margin, so that the model sees what lies across the seam, then cut back to the chunk."""
        g = self.grid
        left, top = g.transform.c - halo_px * RES_M, g.transform.f + halo_px * RES_M
        return Grid(self.crs, from_origin(left, top, RES_M, RES_M), g.height + 2 * halo_px, g.width + 2 * halo_px)

    def bounds_4326(self, halo_px: int = 0) -> tuple[float, float, float, float]:
        sq = self.square.buffer(halo_px * RES_M, join_style="mitre")
        return to_crs(shapely.segmentize(sq, self.size_m / 8), self.crs, "EPSG:4326").bounds

    def aoi_mask(self, river: str | None = None) -> np.ndarray:
        """Pixels of the chunk (centre inside) in the buffer, of one river or all."""
        geom = self.aoi if river is None else self.river_aois.get(river)
        return rasterize([] if geom is None else [geom], self.grid)


def read_inner(path: Path, halo_px: int, n: int) -> np.ndarray:
    """Band 1 of a chunk raster exported with a margin of `halo_px`: the chunk's own n x n pixels."""
    import rasterio
    import rasterio.windows

    with rasterio.open(path) as ds:
        return ds.read(1, window=rasterio.windows.Window(halo_px, halo_px, n, n))


def chunk_id(zone: Zone, size_m: float, col: int, row: int) -> str:
    """`44N_5km_e0130_n0541`: zone, chunk size and position (easting and northing / size)."""
    return f"{zone.name}_{size_m / 1000:g}km_e{col:04d}_n{row:04d}"


def plan_chunks(rivers: list[River], buffer_m: float, chunk_km: float) -> list[Chunk]:
    """The chunks that cover the rivers' buffer, in id order.

    Each river is buffered in the CRS of every UTM zone it reaches; the buffer is cut at the zone's
    band, so each piece of ground belongs to exactly one zone, then covered by the zone's squares
    of `chunk_km`. Only squares with buffer inside are kept.
    """
    size = chunk_km * 1000.0
    if size % RES_M:
        raise SandmineError(f"survey.chunk_km {chunk_km} is not a whole number of 10 m pixels", "params.yaml")
    margin = (buffer_m + size) / 111_000.0 / 0.3  # degrees, generous at any latitude below 72°
    per_zone: dict[Zone, dict[str, BaseGeometry]] = defaultdict(dict)
    for river in rivers:
        for zone in zones_of(river.geometry, margin):
            part = river.geometry.intersection(zone.band.buffer(margin))
            if part.is_empty:
                continue
            crs = CRS.from_epsg(zone.epsg)
            local = to_crs(shapely.segmentize(part, 0.001), "EPSG:4326", crs)  # ~100 m vertices before projecting
            band = to_crs(shapely.segmentize(zone.band, 0.05), "EPSG:4326", crs)
            aoi = local.buffer(buffer_m).intersection(band)
            if not aoi.is_empty and aoi.area > 0:
                per_zone[zone][river.name] = aoi
    chunks = []
    for zone, aois in per_zone.items():
        names = sorted(aois)
        tree = STRtree([aois[n] for n in names])
        union = shapely.union_all([aois[n] for n in names])
        minx, miny, maxx, maxy = union.bounds
        shapely.prepare(union)
        for col in range(int(math.floor(minx / size)), int(math.floor(maxx / size)) + 1):
            for row in range(int(math.floor(miny / size)), int(math.floor(maxy / size)) + 1):
                sq = box(col * size, row * size, (col + 1) * size, (row + 1) * size)
                if not union.intersects(sq):
                    continue
                parts = {}
                for i in tree.query(sq, predicate="intersects"):
                    piece = aois[names[int(i)]].intersection(sq)
                    if piece.area > 0:
                        parts[names[int(i)]] = piece
                if not parts:
                    continue
                aoi = shapely.union_all(list(parts.values()))
                chunks.append(
                    Chunk(chunk_id(zone, size, col, row), zone, col, row, size, tuple(sorted(parts)), aoi, parts)
                )
    if not chunks:
        raise SandmineError("the rivers' buffer covers no chunk", "params.yaml: survey", "check the rivers file")
    return sorted(chunks, key=lambda c: c.chunk_id)
