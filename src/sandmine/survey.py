"""River-scale survey: rivers → buffer → chunks → per chunk and period a mask and polygons → one survey.

A survey covers every river of a vector file (optionally clipped to a region) within `aoi.buffer_m`,
for each of several periods. The buffer is cut into **chunks**: squares of `survey.chunk_km` aligned
to the UTM grid of their zone (a river crossing zones is split at the zone's meridian, each chunk lies
in one zone and no ground is in two chunks). A chunk's id names its zone, size and position only
(`44N_5km_e0130_n0541`), so adding a river or a period leaves every existing chunk's id, image and
prediction as they were. Polygons of mining are made per chunk and merged across chunk seams, so a
mine cut by a seam is one polygon of the survey.

This module is the survey's geometry and files (no model, no source): periods, rivers, chunks,
seam merging, change, VRT mosaics and the GeoPackage. `steps/survey.py` runs it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import shapely
from rasterio import features
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from sandmine.core.errors import SandmineError
from sandmine.core.files import atomic_path
from sandmine.core.raster import Grid, OverviewResampling, rasterize, to_crs

log = logging.getLogger(__name__)

RES_M = 10.0
PERIOD = re.compile(r"^(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})$")


# ---------------------------------------------------------------------------------------------- periods


@dataclass(frozen=True, order=True)
class Period:
    """A span of dates, both ends included; its image is a composite over the span (real sources)
    or the view on its middle day (the synthetic world)."""

    start: dt.date
    end: dt.date

    @property
    def label(self) -> str:
        """`2025-10-01_2025-12-31`: the period in file names and tables."""
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def middle(self) -> dt.date:
        """The day an Earth Engine composite of `days` is centred on to cover exactly this period
        (`gee.composite` spans date − days // 2 to date + days − days // 2)."""
        return self.start + dt.timedelta(days=self.days // 2)


def parse_periods(texts: list[str], where: str) -> list[Period]:
    """`["2025-10-01/2025-12-31", …]` to periods in date order.

    Raises:
        SandmineError: a period is not `START/END` with real dates, ends before it starts, or overlaps another.
    """
    if not texts:
        raise SandmineError("no periods", where, "give at least one, e.g. [2025-10-01/2025-12-31]")
    out = []
    for i, text in enumerate(texts):
        m = PERIOD.match(str(text).strip())
        try:
            if m is None:
                raise ValueError("not START/END")
            start, end = dt.date.fromisoformat(m.group(1)), dt.date.fromisoformat(m.group(2))
        except ValueError as exc:
            raise SandmineError(
                f"period {i + 1} '{text}' is not START/END with ISO dates ({exc})",
                where,
                "write periods as YYYY-MM-DD/YYYY-MM-DD, e.g. 2025-10-01/2025-12-31",
            ) from exc
        if end < start:
            raise SandmineError(f"period '{text}' ends before it starts", where, "swap its dates")
        out.append(Period(start, end))
    out.sort()
    for a, b in zip(out, out[1:]):
        if b.start <= a.end:
            raise SandmineError(
                f"periods {a.start}/{a.end} and {b.start}/{b.end} overlap",
                where,
                "make each period start after the previous one ends (change is measured between them)",
            )
    return out


# ----------------------------------------------------------------------------------------------- rivers


@dataclass(frozen=True)
class River:
    """One river of the survey: its name, its geometry (EPSG:4326, lines or polygons) and the
    properties of its first feature (the synthetic world's rivers carry their recipe there)."""

    name: str
    geometry: BaseGeometry
    properties: dict = field(default_factory=dict, hash=False, compare=False)


UNNAMED = "(unnamed)"  # the river of features whose name field is empty


def read_rivers(path: str | Path, name_field: str, region: str | Path | None = None, layer: str = "") -> list[River]:
    """Rivers of a vector file (any CRS and format GeoPandas reads; `layer` of a GeoPackage), by name,
    clipped to `region`.

    Features with the same name are one river; features whose name is empty are the river `(unnamed)`.
    The log says what was read (features, rivers, km of line, km² of polygons) and what was left out
    (features without geometry, rivers outside the region).

    Raises:
        SandmineError: naming the file and the field when the file is missing, has no CRS, holds several
            layers with none chosen, lacks `name_field`, or no river lies inside the region.
    """
    from sandmine.core.vectors import extent, few, read_vectors

    where = str(Path(path).expanduser())
    frame = read_vectors(path, "rivers", "survey.rivers", layer, "survey.rivers_layer")
    if name_field not in frame.columns:
        columns = [c for c in frame.columns if c != "geometry"]
        fix = (
            f"set 'survey.river_field' to the field that names each river (one of {columns})"
            if columns
            else f"the file has no fields at all, so its rivers cannot be told apart: add a text field '{name_field}' "
            f"naming each river (QGIS: Layer > Open Attribute Table > New Field, then fill it in, or Field "
            f"Calculator with a constant name such as 'Ganga' for a file of one river) and save it"
        )
        raise SandmineError(f"rivers have no field '{name_field}' (fields: {columns})", where, fix)
    if frame.empty:
        raise SandmineError("rivers file has no geometry", where, "draw the rivers as lines or polygons")
    names = frame[name_field].astype("string").str.strip()
    blank = names.isna() | (names == "")
    if blank.any():
        rows = [int(i) + 1 for i in frame.index[blank]]
        log.warning(
            "%s: %d feature(s) with an empty '%s' are surveyed as the river '%s' (features %s, counting from 1)",
            where, len(rows), name_field, UNNAMED, few(rows),
        )  # fmt: skip
    names = names.fillna(UNNAMED).mask(names == "", UNNAMED)
    area = None
    if region:
        area = _region(Path(region).expanduser())
    rivers, outside = [], []
    for name, group in frame.groupby(names, sort=True):
        geom = shapely.union_all(list(group.geometry))
        if area is not None:
            geom = geom.intersection(area)
        if geom.is_empty:
            outside.append(str(name))
            continue
        props = {k: _plain(v) for k, v in group.iloc[0].items() if k != "geometry"}
        rivers.append(River(str(name), geom, props))
    km, km2 = (sum(v) for v in zip(*(extent(r.geometry) for r in rivers), strict=True)) if rivers else (0.0, 0.0)
    log.info(
        "rivers: %d feature(s) of %s read as %d river(s): %.1f km of line, %.1f km² of polygons%s%s",
        len(frame), where, len(rivers), km, km2, f" inside the region {region}" if region else "",
        f"; outside the region, left out: {', '.join(outside)}" if outside else "",
    )  # fmt: skip
    if not rivers:
        raise SandmineError(
            f"no river of {Path(path).name} lies inside the region {region}",
            "params.yaml: survey.region",
            "check that the region overlaps the rivers (both are reprojected to EPSG:4326), or clear survey.region",
        )
    return rivers


def _region(path: Path) -> BaseGeometry:
    from sandmine.core.vectors import read_vectors

    frame = read_vectors(path, "region", "survey.region")
    geom = shapely.union_all(list(frame.geometry))
    if geom.is_empty or geom.area == 0:
        raise SandmineError("region has no polygon with area", str(path), "draw the region as a polygon")
    return geom


def _plain(value: object) -> object:
    """numpy scalars from a GeoDataFrame row as plain Python numbers."""
    return value.item() if isinstance(value, np.generic) else value


# ----------------------------------------------------------------------------------------------- chunks


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


# ------------------------------------------------------------------------------------- polygons, seams


@dataclass
class Piece:
    """A polygon of one chunk (zone metres) with what merging needs: its pixel count and
    probability sum (for the mean), its key (period, or period pair and change class)."""

    geometry: BaseGeometry
    chunk_id: str
    zone: Zone
    key: tuple
    pixels: int
    prob_sum: float


def pieces(mask: np.ndarray, prob: np.ndarray | None, chunk: Chunk, key: tuple) -> list[Piece]:
    """The 4-connected areas of `mask` as polygons with their pixel count and probability sum."""
    from scipy import ndimage

    regions, n = ndimage.label(mask)
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    counts = ndimage.sum_labels(np.ones(mask.shape, np.float32), regions, index)
    sums = ndimage.sum_labels(prob, regions, index) if prob is not None else np.zeros(n)
    g = chunk.grid
    out = []
    for geom, value in features.shapes(regions.astype(np.int32), mask=mask, transform=g.transform):
        i = int(value) - 1
        out.append(Piece(shape(geom), chunk.chunk_id, chunk.zone, key, int(counts[i]), float(sums[i])))
    return out


@dataclass
class Merged:
    """A polygon of the survey: one or more pieces joined across chunk seams."""

    geometry: BaseGeometry  # zone metres
    zone: Zone
    key: tuple
    chunks: tuple[str, ...]
    pixels: int
    prob_sum: float

    @property
    def area_ha(self) -> float:
        return self.geometry.area / 10_000.0

    @property
    def mean_prob(self) -> float:
        return self.prob_sum / max(self.pixels, 1)


def merge_seams(items: Iterable[Piece], chunks: dict[str, Chunk]) -> list[Merged]:
    """Join pieces of the same zone and key that share an edge across chunk seams.

    Pieces that touch no chunk edge pass through; the others are unioned per (zone, key) and split
    into their connected polygons, each collecting the pixels, probability and chunk ids of the
    pieces inside it. Pieces meeting only at a corner stay apart (4-connectivity, as within a chunk).
    """
    out: list[Merged] = []
    edge: dict[tuple[Zone, tuple], list[Piece]] = defaultdict(list)
    for p in items:
        if _touches_edge(p.geometry, chunks[p.chunk_id]):
            edge[(p.zone, p.key)].append(p)
        else:
            out.append(Merged(p.geometry, p.zone, p.key, (p.chunk_id,), p.pixels, p.prob_sum))
    for (zone, key), group in edge.items():
        union = shapely.union_all([p.geometry for p in group])
        polys = list(getattr(union, "geoms", [union]))
        tree = STRtree(polys)
        members: dict[int, list[Piece]] = defaultdict(list)
        for p in group:
            hits = tree.query(p.geometry.representative_point(), predicate="intersects")
            members[int(hits[0])].append(p)
        for i, poly in enumerate(polys):
            ps = members[i]
            out.append(
                Merged(
                    poly,
                    zone,
                    key,
                    tuple(sorted({p.chunk_id for p in ps})),
                    sum(p.pixels for p in ps),
                    sum(p.prob_sum for p in ps),
                )
            )
    return sorted(_across_zones(out, chunks), key=lambda m: (m.key, m.zone.epsg, m.chunks, m.geometry.bounds))


def _across_zones(items: list[Merged], chunks: dict[str, Chunk]) -> list[Merged]:
    """Join polygons of the same key on either side of a zone boundary (a meridian, or the equator).

    Each zone's chunks are cut at its band, so the two halves of a mine on a zone boundary come from
    different pixel grids and meet with up to a pixel between them: they are joined when less than two
    pixels apart, in the CRS of the zone with the lower EPSG code, closing the gap between them.
    """
    bands: dict[Zone, BaseGeometry] = {}
    edge_chunks: dict[str, bool] = {}
    near: dict[tuple, list[int]] = defaultdict(list)
    for i, m in enumerate(items):
        if m.zone not in bands:
            bands[m.zone] = to_crs(shapely.segmentize(m.zone.band, 0.01), "EPSG:4326", CRS.from_epsg(m.zone.epsg))
        band = bands[m.zone]
        for cid in m.chunks:  # only chunks that reach their band's edge can hold such a polygon
            if cid not in edge_chunks:
                edge_chunks[cid] = not band.contains(chunks[cid].square)
        if any(edge_chunks[c] for c in m.chunks) and m.geometry.distance(band.boundary) <= 2 * RES_M:
            near[m.key].append(i)
    drop: set[int] = set()
    joined: list[Merged] = []
    for key, idx in near.items():
        zones = {items[i].zone for i in idx}
        if len(zones) < 2:
            continue
        base = min(zones, key=lambda z: z.epsg)
        geoms = [to_crs(items[i].geometry, f"EPSG:{items[i].zone.epsg}", f"EPSG:{base.epsg}") for i in idx]
        grown = [g.buffer(RES_M, join_style="mitre") for g in geoms]
        tree = STRtree(grown)
        pairs = [(int(a), int(b)) for a, b in zip(*tree.query(grown, predicate="intersects"))]
        pairs = [(a, b) for a, b in pairs if items[idx[a]].zone != items[idx[b]].zone]
        groups: dict[int, list[int]] = defaultdict(list)
        for k, label in enumerate(_components(len(idx), pairs)):
            groups[label].append(k)
        for members in groups.values():
            if len(members) < 2:
                continue
            d = RES_M  # closes the gap (under two pixels) between the two grids, keeps the outline
            geom = (
                shapely.union_all([geoms[k] for k in members])
                .buffer(d, join_style="mitre")
                .buffer(-d, join_style="mitre")
            )
            ms = [items[idx[k]] for k in members]
            drop |= {idx[k] for k in members}
            chunk_ids = tuple(sorted({c for m in ms for c in m.chunks}))
            joined.append(Merged(geom, base, key, chunk_ids, sum(m.pixels for m in ms), sum(m.prob_sum for m in ms)))
    return [m for i, m in enumerate(items) if i not in drop] + joined


def _components(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Connected-component label of each of `n` items linked by `pairs`."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = np.array([p[0] for p in pairs], int)
    b = np.array([p[1] for p in pairs], int)
    graph = coo_matrix((np.ones(len(pairs)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _touches_edge(geom: BaseGeometry, chunk: Chunk) -> bool:
    minx, miny, maxx, maxy = geom.bounds
    left, bottom, right, top = chunk.square.bounds
    eps = RES_M / 100
    return minx <= left + eps or miny <= bottom + eps or maxx >= right - eps or maxy >= top - eps


def nearest_river(geom: BaseGeometry, chunk_ids: tuple[str, ...], chunks: dict[str, Chunk]) -> str:
    """The river whose buffer (in the polygon's chunks) holds most of the polygon; ties by name."""
    best: dict[str, float] = defaultdict(float)
    for cid in chunk_ids:
        for name, aoi in chunks[cid].river_aois.items():
            best[name] += aoi.intersection(geom).area
    if not best:
        return ""
    return max(sorted(best), key=lambda n: best[n])


def clean_inner(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """`mask` without 8-connected objects under `min_pixels`, except those touching the chunk's edge
    (they may be part of a mine across the seam: the merged polygon decides)."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, np.ones((3, 3), bool))
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    keep[border] = True
    keep[0] = False
    return keep[lab]


# ----------------------------------------------------------------------------------------------- mosaic


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


# ------------------------------------------------------------------------------------------ GeoPackage


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
