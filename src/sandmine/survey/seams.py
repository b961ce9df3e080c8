"""Polygons per chunk and their merge across chunk seams and zone boundaries into one survey's polygons."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from rasterio import features
from rasterio.crs import CRS
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from sandmine.core.raster import to_crs
from sandmine.survey.chunks import RES_M, Chunk, Zone

log = logging.getLogger(__name__)


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
