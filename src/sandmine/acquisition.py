"""Active learning: windows of predicted rasters ranked by uncertainty, chosen apart from each other.

A probability COG `X.tif` (uint8, probability = value / 255) is cut into square windows on a fixed
grid. A pixel's uncertainty is read from `X_uncertainty.tif` beside it when that file exists (uint8,
value / 255), else it is the binary entropy of the probability (bits, 0 at p = 0 or 1, 1 at p = 0.5).
A window's score is the mean uncertainty of its valid pixels (not the file's nodata, inside the AOI
when one is given); windows with too few valid pixels, and windows already labelled (mostly 0/1 in
`labels/X.tif`), are not candidates. `select` then takes candidates greedily by score, skipping any
whose centre lies within `min_distance_m` of one already taken: proposals spread over the map instead
of tiling one confusing bar. A minimum distance, not a cap per raster, because two dates of one site
(or two survey periods of one chunk) cover the same ground, and a cap would still take neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows
from pyproj import Transformer

from sandmine.core.errors import SandmineError
from sandmine.core.schema import IGNORE

UNCERTAINTY_SUFFIX = "_uncertainty"
M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)


@dataclass(frozen=True)
class Window:
    """A candidate window of one predicted raster, in its pixels and in lon/lat."""

    source: str  # the raster's stem: an obs_id, or a survey chunk's id
    path: str
    row: int
    col: int
    height: int
    width: int
    score: float  # mean uncertainty of the valid pixels, 0..1
    area_km2: float
    ring: tuple[tuple[float, float], ...]  # the window's corners in lon/lat, closed

    @property
    def centre(self) -> tuple[float, float]:
        xs, ys = zip(*self.ring[:-1], strict=True)
        return sum(xs) / len(xs), sum(ys) / len(ys)


def entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits of probabilities `p` (0 at 0 and 1, 1 at 0.5)."""
    q = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return (-(q * np.log2(q) + (1 - q) * np.log2(1 - q))).astype(np.float32)


def window_scores(
    uncertainty: np.ndarray, valid: np.ndarray, window_px: int, min_valid: float
) -> list[tuple[int, int, int, int, float]]:
    """(row, col, height, width, score) of the `window_px` squares tiling a (H, W) array.

    Edge windows are cut at the array's border; a window is kept when at least `min_valid` of its
    pixels are valid, and scored by the mean uncertainty of those.
    """
    h, w = uncertainty.shape
    out = []
    for r in range(0, h, window_px):
        for c in range(0, w, window_px):
            u = uncertainty[r : r + window_px, c : c + window_px]
            v = valid[r : r + window_px, c : c + window_px]
            n = int(v.sum())
            if n == 0 or n < min_valid * window_px * window_px:
                continue
            out.append((r, c, u.shape[0], u.shape[1], float(u[v].mean())))
    return out


def _read(src: rasterio.DatasetReader, win: rasterio.windows.Window) -> tuple[np.ndarray, np.ndarray]:
    """Band 1 of `win` as value / 255 and its valid mask (the file's nodata excluded)."""
    raw = src.read(1, window=win)
    valid = np.ones(raw.shape, bool) if src.nodata is None else raw != src.nodata
    return raw.astype(np.float32) / 255.0, valid


def _open_beside(stack: ExitStack, path: Path, like: rasterio.DatasetReader, what: str) -> rasterio.DatasetReader:
    src = stack.enter_context(rasterio.open(path))
    if (src.height, src.width) != (like.height, like.width) or src.transform != like.transform:
        raise SandmineError(
            f"{what} is not on the grid of {like.name}", str(path), f"write the {what} on the probability raster's grid"
        )
    return src


def candidates(
    prob_paths: Sequence[Path],
    window_px: int,
    labels: Path | None = None,
    aois: Path | None = None,
    min_valid: float = 0.5,
    labelled_fraction: float = 0.5,
) -> list[Window]:
    """Scored windows of every probability raster, read `window_px` rows at a time.

    `labels`/`aois`: folders of `{stem}.tif` masks on the rasters' grids (annotate-pull's labels,
    the aoi stage's masks); a window whose pixels are at least `labelled_fraction` labelled (0 or
    1, not ignore) is skipped, pixels outside the AOI are not valid.
    """
    out: list[Window] = []
    for path in prob_paths:
        stem = path.stem
        with ExitStack() as stack:
            try:
                prob = stack.enter_context(rasterio.open(path))
            except rasterio.errors.RasterioIOError as exc:
                raise SandmineError(f"cannot read the probability raster ({exc})", str(path),
                                    "give the probability COGs written by infer or survey") from exc  # fmt: skip
            if prob.count != 1 or prob.dtypes[0] != "uint8" or prob.crs is None:
                raise SandmineError(
                    f"not a probability COG (bands {prob.count}, {prob.dtypes[0]}, crs {prob.crs})",
                    str(path),
                    "give the one-band uint8 georeferenced probability rasters of infer or survey",
                )
            unc_path = path.with_name(f"{stem}{UNCERTAINTY_SUFFIX}.tif")
            unc = _open_beside(stack, unc_path, prob, "uncertainty raster") if unc_path.exists() else None
            lab_path = labels / f"{stem}.tif" if labels is not None else None
            lab = _open_beside(stack, lab_path, prob, "label mask") if lab_path and lab_path.exists() else None
            aoi_path = aois / f"{stem}.tif" if aois is not None else None
            if aoi_path is not None and not aoi_path.exists():
                raise SandmineError(
                    "no AOI mask for this raster", str(aoi_path), "run the aoi stage, or leave out --aoi"
                )
            aoi = _open_beside(stack, aoi_path, prob, "AOI mask") if aoi_path else None
            to_lonlat = Transformer.from_crs(prob.crs, "EPSG:4326", always_xy=True).transform
            px_km2 = abs(prob.transform.a * prob.transform.e - prob.transform.b * prob.transform.d) / 1e6
            for r in range(0, prob.height, window_px):
                win = rasterio.windows.Window(0, r, prob.width, min(window_px, prob.height - r))
                p, valid = _read(prob, win)
                if unc is not None:
                    u, ok = _read(unc, win)
                    valid &= ok
                else:
                    u = entropy(p)
                if aoi is not None:
                    valid &= aoi.read(1, window=win) > 0
                known = (lab.read(1, window=win) != IGNORE) if lab is not None else None
                for r0, c0, h, w, score in window_scores(u, valid, window_px, min_valid):
                    if known is not None and known[r0 : r0 + h, c0 : c0 + w].mean() >= labelled_fraction:
                        continue
                    row = r + r0
                    corners = [(c0, row), (c0 + w, row), (c0 + w, row + h), (c0, row + h), (c0, row)]
                    ring = tuple(to_lonlat(*(prob.transform * xy)) for xy in corners)
                    out.append(Window(stem, str(path), row, c0, h, w, score, h * w * px_km2, ring))
    return out


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Ground distance in metres between two lon/lat points (equirectangular: windows are km apart)."""
    dx = (a[0] - b[0]) * math.cos(math.radians((a[1] + b[1]) / 2)) * M_PER_DEG
    return math.hypot(dx, (a[1] - b[1]) * M_PER_DEG)


def select(windows: Iterable[Window], n: int, min_distance_m: float) -> list[Window]:
    """Up to `n` windows, highest score first, none within `min_distance_m` of one already chosen.

    Ties keep the input order (a stable sort), so the same inputs give the same proposals.
    """
    chosen: list[Window] = []
    centres: list[tuple[float, float]] = []
    for w in sorted(windows, key=lambda w: -w.score):
        if len(chosen) == n:
            break
        c = w.centre
        if all(distance_m(c, o) >= min_distance_m for o in centres):
            chosen.append(w)
            centres.append(c)
    return chosen


def feature_collection(chosen: Sequence[Window]) -> dict:
    """The proposals as GeoJSON (EPSG:4326): rank (1 = label first), score, area, source and pixel window."""
    feats = []
    for rank, w in enumerate(chosen, 1):
        props = {
            "rank": rank,
            "score": round(w.score, 4),
            "area_km2": round(w.area_km2, 4),
            "source": w.source,
            "file": w.path,
            "row": w.row,
            "col": w.col,
            "height": w.height,
            "width": w.width,
        }
        geom = {"type": "Polygon", "coordinates": [[[round(x, 7), round(y, 7)] for x, y in w.ring]]}
        feats.append({"type": "Feature", "properties": props, "geometry": geom})
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "EPSG:4326"}},
        "features": feats,
    }


def global_key(w: Window) -> str:
    """The Labelbox global key of a proposed window: its source and pixel window (unique per window)."""
    return f"{w.source}__r{w.row}_c{w.col}_{w.height}x{w.width}"


def bounds(w: Window) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the window in lon/lat."""
    xs, ys = zip(*w.ring, strict=True)
    return min(xs), min(ys), max(xs), max(ys)
