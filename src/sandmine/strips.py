"""Mask and polygons of a probability raster of any size, computed a strip of rows at a time.

Connected mines are found per strip and joined across strip seams with a union-find of their labels,
so memory holds one strip of rows (plus a few numbers per object), not the whole raster: the mask and
polygons are the same as `monitoring.clean` and `vectorize.polygons` give on the whole array.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows
import shapely
from rasterio import features
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import mapping, shape

from sandmine.core.metrics import level
from sandmine.core.raster import CogWriter, Grid, read_grid, to_crs

STRIP_ROWS = 256  # a 30,000 px wide strip: 7.7 M pixels, ~0.2 GB of working arrays
_EIGHT = np.ones((3, 3), bool)
_FOUR = ndimage.generate_binary_structure(2, 1)


class _Labels:
    """Labels of objects cut by strip seams, numbered over the whole raster, with their unions."""

    def __init__(self, structure: np.ndarray) -> None:
        self.structure = structure
        self.parent = np.zeros(1, np.int64)  # label 0 is the background
        self.last: np.ndarray | None = None  # global labels of the previous strip's last row

    def label(self, mask: np.ndarray) -> np.ndarray:
        """Global (int64) labels of `mask`, the next strip down; objects touching the strip above are joined."""
        lab, n = ndimage.label(mask, self.structure)
        out = lab.astype(np.int64)
        out[lab > 0] += len(self.parent) - 1
        self.parent = np.concatenate([self.parent, np.arange(len(self.parent), len(self.parent) + n)])
        if self.last is not None and n:
            self._join(self.last, out[0])
        self.last = out[-1].copy()
        return out

    def _join(self, above: np.ndarray, below: np.ndarray) -> None:
        shifts = (-1, 0, 1) if self.structure.all() else (0,)  # 8- or 4-neighbours across the seam
        pairs = []
        w = len(above)
        for d in shifts:
            a = above[max(0, -d) : w - max(0, d)]
            b = below[max(0, d) : w - max(0, -d)]
            hit = (a > 0) & (b > 0)
            pairs.append(np.stack([a[hit], b[hit]], 1))
        for x, y in np.unique(np.concatenate(pairs), axis=0):
            rx, ry = self._find(int(x)), self._find(int(y))
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)  # the root is the object's first label (top-left)

    def _find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = int(self.parent[x])
        return x

    def roots(self) -> np.ndarray:
        """The root label of every label (0 for the background)."""
        r = self.parent.copy()
        while True:
            nxt = r[r]
            if np.array_equal(nxt, r):
                return r
            r = nxt


def _strips(src: rasterio.DatasetReader, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    for r0 in range(0, src.height, rows):
        h = min(rows, src.height - r0)
        yield r0, np.asarray(src.read(1, window=rasterio.windows.Window(0, r0, src.width, h)))


def mask_and_polygons(
    prob_path: str | Path,
    threshold: float,
    min_pixels: int,
    min_area_ha: float,
    properties: dict[str, str],
    mask_path: str | Path | None = None,
    rows: int = STRIP_ROWS,
) -> list[dict]:
    """The mine mask (written to `mask_path` as a uint8 COG when given) and its polygons, from a probability COG.

    Args:
        prob_path: uint8 probability COG (probability = value / 255).
        threshold: probability at which a pixel is mined.
        min_pixels: 8-connected objects smaller than this are dropped from the mask (`monitoring.clean`).
        min_area_ha: polygons smaller than this are dropped (`vectorize.polygons`).
        rows: rows per strip; the result does not depend on it.

    Returns:
        GeoJSON features (EPSG:4326) with `area_ha`, `mean_prob` and `properties`, top to bottom.
    """
    # GDAL's block cache defaults to 5 % of RAM and would hold the strips read and written: keep it small
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        return _mask_and_polygons(prob_path, threshold, min_pixels, min_area_ha, properties, mask_path, rows)


GDAL_CACHE_MB = 64


def _mask_and_polygons(
    prob_path: str | Path,
    threshold: float,
    min_pixels: int,
    min_area_ha: float,
    properties: dict[str, str],
    mask_path: str | Path | None,
    rows: int,
) -> list[dict]:
    grid = read_grid(prob_path)
    lvl = level(threshold)
    objects = _Labels(_EIGHT)
    sizes: list[np.ndarray] = [np.zeros(1, np.int64)]  # pixels per label, label 0 first
    with rasterio.open(prob_path) as src:  # pass 1: the size of every 8-connected object
        for _, q in _strips(src, rows):
            start = len(objects.parent)
            lab = objects.label(q >= lvl)
            n = len(objects.parent) - start
            sizes.append(np.bincount(lab[lab > 0] - start, minlength=n))
    keep = _kept(objects, np.concatenate(sizes), min_pixels)
    regions = _Labels(_FOUR)
    sums: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    pieces: dict[int, list] = defaultdict(list)
    objects.last, objects.parent = None, np.zeros(1, np.int64)
    writer = CogWriter(mask_path, grid, "uint8", "mine") if mask_path is not None else None
    try:
        with rasterio.open(prob_path) as src:  # pass 2: the cleaned mask, and its polygons piece by piece
            for r0, q in _strips(src, rows):
                mask = keep[objects.label(q >= lvl)]
                if writer is not None:
                    writer.write_rows(r0, mask.astype(np.uint8))
                _pieces(regions, np.where(mask, q / 255.0, 0.0), threshold, grid, r0, sums, counts, pieces)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    return _features(regions, sums, counts, pieces, grid, min_area_ha, properties)


def _kept(objects: _Labels, sizes: np.ndarray, min_pixels: int) -> np.ndarray:
    """Per label: whether its whole object has at least `min_pixels` pixels."""
    roots = objects.roots()
    per_root = np.bincount(roots, weights=sizes, minlength=len(roots))
    keep = per_root[roots] >= min_pixels
    keep[0] = False
    return keep


def _pieces(
    regions: _Labels,
    prob: np.ndarray,
    threshold: float,
    grid: Grid,
    r0: int,
    sums: dict[int, float],
    counts: dict[int, int],
    pieces: dict[int, list],
) -> None:
    """Add one strip's 4-connected regions of `prob >= threshold`: their pixel sums and polygon pieces."""
    above = prob >= threshold
    lab = regions.label(above)
    if not above.any():
        return
    first = int(lab[above].min())
    local = np.where(above, lab - first + 1, 0).astype(np.int32)  # features.shapes takes int32
    n = int(local.max())
    flat = local.ravel()
    total = np.bincount(flat, weights=prob.ravel(), minlength=n + 1)[1:]
    for k, (s, c) in enumerate(zip(total.tolist(), np.bincount(flat, minlength=n + 1)[1:].tolist())):
        sums[k + first] += s
        counts[k + first] += c
    transform = grid.transform @ Affine.translation(0, r0)
    for geom, value in features.shapes(local, mask=above, transform=transform):
        pieces[int(value) + first - 1].append(shape(geom))


def _features(
    regions: _Labels,
    sums: dict[int, float],
    counts: dict[int, int],
    pieces: dict[int, list],
    grid: Grid,
    min_area_ha: float,
    properties: dict[str, str],
) -> list[dict]:
    roots = regions.roots()
    by_root: dict[int, list[int]] = defaultdict(list)
    for label in pieces:
        by_root[int(roots[label])].append(label)
    out = []
    for root in sorted(by_root):
        labels = by_root[root]
        parts = [g for label in labels for g in pieces[label]]
        poly = parts[0] if len(parts) == 1 else shapely.simplify(shapely.union_all(parts), 0)
        area_ha = poly.area / 10_000.0
        if area_ha < min_area_ha:
            continue
        mean_prob = sum(sums[k] for k in labels) / sum(counts[k] for k in labels)
        out.append(
            {
                "type": "Feature",
                "properties": {**properties, "area_ha": round(area_ha, 3), "mean_prob": round(mean_prob, 3)},
                "geometry": mapping(to_crs(poly, grid.crs, "EPSG:4326")),
            }
        )
    return out
