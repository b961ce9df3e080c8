"""Layout of a synthetic river scene: which material lies where on a given date.

A site's static geography (river course, fields, villages, mines and their histories) is
drawn from the site's seed; the date decides the water level, the crops, and which mines exist,
are flooded or abandoned. Coordinates are pixels: x = column, y = row, 10 m each.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field

import numpy as np
from rasterio import features
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

IDENTITY = Affine.identity()


def stable_seed(*parts: object) -> list[int]:
    """A seed sequence from strings and numbers that is the same in every process."""
    return [zlib.crc32(str(p).encode()) for p in parts]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Spatially correlated noise with unit sd and correlation length `sigma` px."""
    step = max(1, int(sigma // 3))
    small = (shape[0] // step + 2, shape[1] // step + 2)
    n = ndimage.gaussian_filter(rng.standard_normal(small), sigma / step, mode="wrap")
    if step > 1:
        n = ndimage.zoom(n, step, order=1)
    n = n[: shape[0], : shape[1]]
    return ((n - n.mean()) / (n.std() + 1e-9)).astype(np.float32)


def burn(shape: tuple[int, int], geom: BaseGeometry) -> np.ndarray:
    """Boolean mask of pixels whose centre falls in `geom` (pixel coordinates)."""
    if geom.is_empty:
        return np.zeros(shape, bool)
    return features.rasterize([(geom, 1)], out_shape=shape, transform=IDENTITY, dtype="uint8") > 0


def season_water_fraction(date: dt.date) -> float:
    """Fraction of the active channel's half-width under water, by month (Indian monsoon)."""
    return {1: 0.42, 2: 0.36, 3: 0.31, 4: 0.27, 5: 0.25, 6: 0.3, 7: 0.8, 8: 0.95, 9: 0.85, 10: 0.6, 11: 0.5, 12: 0.46}[
        date.month
    ]


def green_fraction(date: dt.date) -> float:
    """Fraction of fields under green crops (kharif after the monsoon, rabi in winter)."""
    return {1: 0.65, 2: 0.6, 3: 0.4, 4: 0.2, 5: 0.12, 6: 0.15, 7: 0.5, 8: 0.75, 9: 0.8, 10: 0.7, 11: 0.55, 12: 0.6}[
        date.month
    ]


@dataclass
class Mine:
    """One mining area with its history; `shape` is what an annotator would outline."""

    mine_id: int
    shape: Polygon
    in_channel: bool
    born: dt.date
    flooded: dt.date | None
    abandoned: dt.date | None
    pits: list[Polygon]
    stockpiles: list[Polygon]
    road: LineString | None

    def state(self, date: dt.date) -> str | None:
        if date < self.born:
            return None
        if self.abandoned and date >= self.abandoned:
            return "abandoned"
        if self.flooded and date >= self.flooded:
            return "flooded"
        return "active"


@dataclass
class River:
    """The river's static course: centreline offset, channel half-width, water thread."""

    theta: float
    params: dict[str, float]

    def frame(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(u, n): along-river coordinate and signed distance from the centreline, px."""
        yy = (np.arange(h, dtype=np.float32) + 0.5)[:, None] - h / 2
        xx = (np.arange(w, dtype=np.float32) + 0.5)[None, :] - w / 2
        c, s = float(np.cos(self.theta)), float(np.sin(self.theta))
        u = xx * c + yy * s
        v = -xx * s + yy * c
        vc, slope = self.centre(u)
        return u, ((v - vc) / np.sqrt(1 + slope**2)).astype(np.float32)

    def centre(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        k1, k2 = 2 * np.pi / p["lam1"], 2 * np.pi / p["lam2"]
        vc = p["v0"] + p["a1"] * np.sin(k1 * u + p["ph1"]) + p["a2"] * np.sin(k2 * u + p["ph2"])
        slope = p["a1"] * k1 * np.cos(k1 * u + p["ph1"]) + p["a2"] * k2 * np.cos(k2 * u + p["ph2"])
        return vc, slope

    def half_width(self, u: np.ndarray) -> np.ndarray:
        p = self.params
        return p["b0"] * (1 + 0.25 * np.sin(2 * np.pi * u / p["lamb"] + p["phb"]))

    def channel_polygon(self, h: int, w: int) -> Polygon:
        """The active channel (sand and water) as a polygon in pixel coordinates."""
        reach = np.hypot(h, w)
        u = np.linspace(-reach, reach, 400)
        vc, slope = self.centre(u)
        b = self.half_width(u)
        norm = np.sqrt(1 + slope**2)
        c, s = np.cos(self.theta), np.sin(self.theta)
        sides = []
        for sign in (1, -1):
            # offset along the normal of the centreline
            du, dv = -sign * b * slope / norm, sign * b / norm
            uu, vv = u + du, vc + dv
            sides.append(np.c_[uu * c - vv * s + w / 2, uu * s + vv * c + h / 2])
        ring = np.vstack([sides[0], sides[1][::-1]])
        return Polygon(ring).buffer(0)


@dataclass
class Layout:
    """What lies where on one date.

    Attributes:
        material: (H, W) uint8 material codes (see materials.CODE).
        objects: (H, W) int32 object ids, for object-level spectral variation.
        blends: list of (alpha (H, W) float32, material code) painted over the base.
        truth: (H, W) bool, pixels that are mining on this date.
        mines: the mines that exist on this date with their state.
        ignore: areas an annotator would mark as ambiguous.
        barges: (row, col) of barges and trucks (strong radar targets).
        channel: the river's active channel polygon (pixel coordinates).
        moisture: (H, W) float32 0–1, darkens sand (wet depressions).
    """

    material: np.ndarray
    objects: np.ndarray
    blends: list[tuple[np.ndarray, int]]
    truth: np.ndarray
    mines: list[tuple[Mine, str]]
    ignore: list[Polygon]
    barges: list[tuple[int, int]]
    channel: Polygon
    moisture: np.ndarray
    extra: dict[str, float] = field(default_factory=dict)


def _blob(
    rng: np.random.Generator, cx: float, cy: float, r: float, aspect: float, angle: float, k: int = 14
) -> Polygon:
    t = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * (1 + 0.22 * rng.standard_normal(k)).clip(0.5, 1.6)
    x, y = rad * np.cos(t) * aspect, rad * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    blob = Polygon(np.c_[cx + x * c - y * s, cy + x * s + y * c]).buffer(0)
    # a wide angular gap can pinch the ring into pieces: keep one simple polygon
    return blob if blob.geom_type == "Polygon" else blob.convex_hull


def make_river(rng: np.random.Generator, h: int, w: int) -> River:
    """A meandering river that crosses the scene's shorter side (flowing along it).

    Meander sizes follow the reach in view, capped at 6 km so that very large sites get several
    bends rather than one enormous one.
    """
    size = min(h, w, 600)
    along_rows = w >= h  # broad scenes: the river runs top to bottom
    return River(
        theta=float((np.pi / 2 if along_rows else 0.0) + rng.normal(0, 0.25)),
        params={
            "v0": float(rng.uniform(-0.08, 0.08) * size),
            "a1": float(rng.uniform(0.06, 0.16) * size),
            "lam1": float(rng.uniform(1.2, 2.5) * size),
            "ph1": float(rng.uniform(0, 2 * np.pi)),
            "a2": float(rng.uniform(0.01, 0.04) * size),
            "lam2": float(rng.uniform(0.3, 0.6) * size),
            "ph2": float(rng.uniform(0, 2 * np.pi)),
            "b0": float(rng.uniform(22, 42)),
            "lamb": float(rng.uniform(0.6, 1.4) * size),
            "phb": float(rng.uniform(0, 2 * np.pi)),
            "lamw": float(rng.uniform(0.5, 1.2) * size),
            "phw": float(rng.uniform(0, 2 * np.pi)),
            "braided": float(rng.uniform() < 0.45),
            "riparian": float(rng.uniform(3, 10)),
        },
    )


def make_mines(rng: np.random.Generator, river: River, h: int, w: int, density: float) -> list[Mine]:
    """Mining areas with histories between mid-2023 and mid-2026."""
    u, n = river.frame(h, w)
    b = river.half_width(u)
    dry_sand = (np.abs(n) < b * 0.92) & (np.abs(n - _thread(river, u, b)) > b * 0.3)
    flood = (np.abs(n) > b + river.params["riparian"] + 4) & (np.abs(n) < b + 70)
    far_flood = (np.abs(n) > b + 110) & (np.abs(n) < b + 200)  # rare pits 1–2 km from the river
    length_km = (w * abs(np.cos(river.theta)) + h * abs(np.sin(river.theta))) / 100.0
    count = int(rng.poisson(max(0.5, density * length_km * 4.5)))
    mines: list[Mine] = []
    start = dt.date(2023, 6, 1).toordinal()
    for i in range(count):
        kind = rng.uniform()
        in_channel = kind < 0.78
        pool = np.flatnonzero(dry_sand if in_channel else far_flood if kind > 0.985 else flood)
        if pool.size == 0:
            continue
        cy, cx = np.unravel_index(pool[rng.integers(pool.size)], (h, w))
        angle = river.theta + rng.normal(0, 0.3)
        if in_channel:
            r = float(np.exp(rng.uniform(np.log(3.5), np.log(14))))
            shape = _blob(rng, cx + 0.5, cy + 0.5, r, rng.uniform(1.3, 2.6), angle)
        else:
            r = float(np.exp(rng.uniform(np.log(3), np.log(9))))
            shape = _blob(rng, cx + 0.5, cy + 0.5, r, rng.uniform(1.0, 1.8), angle)
        born = dt.date.fromordinal(start + int(rng.integers(0, 1000)))
        flooded = born + dt.timedelta(days=int(rng.integers(90, 600))) if rng.uniform() < 0.35 else None
        abandoned = born + dt.timedelta(days=int(rng.integers(250, 900))) if rng.uniform() < 0.25 else None
        pits = [
            Point(*_inside(rng, shape)).buffer(float(rng.uniform(0.6, 2.5)))
            for _ in range(int(rng.integers(1, 6 if in_channel else 3)))
        ]
        if not in_channel:  # floodplain mines are dug below the water table
            pits.append(shape.buffer(-1.5))
        side = np.sign(n[cy, cx]) or 1.0
        bank_dir = np.array([-np.sin(river.theta), np.cos(river.theta)]) * side
        stock = [
            Point(*(np.array(_inside(rng, shape)) + bank_dir * r * 0.6)).buffer(float(rng.uniform(1, 3)))
            for _ in range(int(rng.integers(0, 3)))
        ]
        reach = float(b[cy, cx] - abs(n[cy, cx]) + river.params["riparian"] + 8)
        end = np.array([cx, cy]) + bank_dir * (reach if in_channel else rng.uniform(10, 30))
        road = LineString([(cx + 0.5, cy + 0.5), tuple(end)]) if rng.uniform() < 0.7 else None
        mines.append(Mine(i, shape, in_channel, born, flooded, abandoned, pits, stock, road))
    return mines


def _inside(rng: np.random.Generator, poly: Polygon) -> tuple[float, float]:
    minx, miny, maxx, maxy = poly.bounds
    for _ in range(50):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if poly.contains(Point(x, y)):
            return float(x), float(y)
    c = poly.representative_point()
    return float(c.x), float(c.y)


def _thread(river: River, u: np.ndarray, b: np.ndarray) -> np.ndarray:
    p = river.params
    return 0.45 * b * np.sin(2 * np.pi * u / p["lamw"] + p["phw"])
