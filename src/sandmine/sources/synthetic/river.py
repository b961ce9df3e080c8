"""A long synthetic river, rendered as any number of adjacent chunks that join without seams.

The river lives in a global pixel frame of its UTM zone (10 m px; X east = (E - E0) / 10,
Y south = (N0 - N) / 10 from the start of its centreline, snapped to the 10 m lattice) and flows
east. Its course, channel width, water threads and season's water level are functions of that
frame, and its mines are drawn per fixed 256 px strip along it, so a window anywhere sees the same
river and the same mines as its neighbours: a mine on a seam is one mine in the truth of both.
Fields, villages, kilns, clouds, haze and noise are drawn per window and do not join at seams.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject, transform_bounds
from shapely.affinity import translate
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from sandmine.core.bands import check_names
from sandmine.core.config import WorldParams
from sandmine.core.raster import Grid, utm_crs, write_cog
from sandmine.sources.synthetic.layout import Mine, River, make_mines, stable_seed
from sandmine.sources.synthetic.materials import Signatures, load_signatures
from sandmine.sources.synthetic.render import band_names, render
from sandmine.sources.synthetic.scene import Terrain
from sandmine.sources.synthetic.world import write_image

RECIPE = "sandmine-synthetic-river-v1"
RES_M = 10.0
STRIP_PX = 256  # mines are drawn per strip of this many px along the river, whatever the chunk size
MARGIN_PX = 128  # a mine's outline and access road reach at most this far from its strip
_PHASES = (("ph1", "lam1", 1.0), ("ph2", "lam2", 1.0), ("phb", "lamb", 1.0), ("phw", "lamw", 1.0))


@dataclasses.dataclass(frozen=True)
class LongRiver:
    """A river `length_km` long flowing east from (`lon`, `lat`), its meanders drawn from (seed, name)."""

    name: str
    basin: str
    seed: int
    lon: float
    lat: float
    length_km: float

    @cached_property
    def crs(self) -> CRS:
        return utm_crs(self.lon, self.lat)

    @cached_property
    def origin(self) -> tuple[float, float]:
        """(E0, N0): the start of the centreline in `crs`, snapped to the 10 m lattice."""
        e, n = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True).transform(self.lon, self.lat)
        return round(e / RES_M) * RES_M, round(n / RES_M) * RES_M

    @cached_property
    def params(self) -> dict[str, float]:
        """River parameters in the global frame (theta = 0), like `layout.make_river`'s but km-scale."""
        rng = np.random.default_rng(stable_seed(self.seed, self.name, "long river"))
        p = {
            "a1": float(rng.uniform(40, 100)),
            "lam1": float(rng.uniform(2500, 5000)),
            "ph1": float(rng.uniform(0, 2 * np.pi)),
            "a2": float(rng.uniform(8, 25)),
            "lam2": float(rng.uniform(600, 1500)),
            "ph2": float(rng.uniform(0, 2 * np.pi)),
            "b0": float(rng.uniform(22, 42)),
            "lamb": float(rng.uniform(400, 1200)),
            "phb": float(rng.uniform(0, 2 * np.pi)),
            "lamw": float(rng.uniform(300, 900)),
            "phw": float(rng.uniform(0, 2 * np.pi)),
            "braided": float(rng.uniform() < 0.45),
            "riparian": float(rng.uniform(3, 10)),
            "phww": 0.0,
        }
        p["v0"] = -(p["a1"] * math.sin(p["ph1"]) + p["a2"] * math.sin(p["ph2"]))  # starts at (lon, lat)
        return p

    @property
    def length_px(self) -> int:
        return int(round(self.length_km * 1000 / RES_M))

    @property
    def max_half_width_m(self) -> float:
        return 1.25 * self.params["b0"] * RES_M

    def centre_y(self, x: np.ndarray) -> np.ndarray:
        """Global Y (px, south) of the centreline at global X (px, east)."""
        return River(0.0, self.params).centre(np.asarray(x, np.float64))[0]

    def local(self, x0: int, y0: int, h: int, w: int) -> River:
        """The river in the pixel frame of the h × w window whose top-left corner is global (x0, y0)."""
        p = dict(self.params)
        cu = x0 + w / 2  # River.frame's u = 0 lies at the window's centre
        for ph, lam, mult in (*_PHASES, ("phww", "lamb", 1.7)):
            p[ph] = (p[ph] + 2 * np.pi * mult * cu / p[lam]) % (2 * np.pi)
        p["v0"] = p["v0"] - (y0 + h / 2)
        return River(0.0, p)

    def grid(self, x0: int, y0: int, h: int, w: int) -> Grid:
        e0, n0 = self.origin
        return Grid(self.crs, from_origin(e0 + x0 * RES_M, n0 - y0 * RES_M, RES_M, RES_M), h, w)

    def offset(self, grid: Grid) -> tuple[int, int] | None:
        """Global (x0, y0) of `grid`'s top-left corner if it lies on the river's lattice, else None."""
        t, (e0, n0) = grid.transform, self.origin
        if grid.crs != self.crs or (t.a, t.b, t.d, t.e) != (RES_M, 0, 0, -RES_M):
            return None
        x0, y0 = (t.c - e0) / RES_M, (n0 - t.f) / RES_M
        if abs(x0 - round(x0)) > 1e-6 or abs(y0 - round(y0)) > 1e-6:
            return None
        return int(round(x0)), int(round(y0))

    def mines(self, x0: int, y0: int, h: int, w: int, seed: int, density: float) -> list[Mine]:
        """The mines reaching into a window, in its pixel frame (ids unique along the river)."""
        first = max(0, (x0 - MARGIN_PX) // STRIP_PX)
        last = min(-(-self.length_px // STRIP_PX), (x0 + w + MARGIN_PX) // STRIP_PX + 1)
        frame = box(x0 - 8, y0 - 8, x0 + w + 8, y0 + h + 8)
        out = []
        for i in range(first, last):
            for m in _strip_mines(self, i, seed, density):
                reach = m.shape if m.road is None else m.shape.union(m.road.buffer(1))
                if reach.intersects(frame):
                    out.append(_moved(m, -x0, -y0))
        return out

    def properties(self) -> dict[str, object]:
        return {
            "river": self.name,
            "basin": self.basin,
            "synthetic": RECIPE,
            "seed": self.seed,
            "lon": self.lon,
            "lat": self.lat,
            "length_km": self.length_km,
            "max_half_width_m": round(self.max_half_width_m, 1),
        }

    @classmethod
    def from_properties(cls, props: dict) -> LongRiver:
        if props.get("synthetic") != RECIPE:
            raise ValueError(f"not a synthetic river ({RECIPE}): {props}")
        return long_river(props["river"], props["basin"], props["lon"], props["lat"], props["length_km"], props["seed"])


def long_river(name: str, basin: str, lon: float, lat: float, length_km: float, seed: int) -> LongRiver:
    return LongRiver(name, basin, int(seed), float(lon), float(lat), float(length_km))


def _moved(m: Mine, dx: float, dy: float) -> Mine:
    def t(g: BaseGeometry) -> Any:
        return translate(g, dx, dy)

    return dataclasses.replace(
        m,
        shape=t(m.shape),
        pits=[t(p) for p in m.pits],
        stockpiles=[t(s) for s in m.stockpiles],
        road=None if m.road is None else t(m.road),
    )


@lru_cache(maxsize=64)  # neighbouring chunks share strips
def _strip_mines(river: LongRiver, index: int, seed: int, density: float) -> tuple[Mine, ...]:
    """Mines of strip `index` in the global frame: `make_mines` on a frame spanning the floodplain."""
    x0 = index * STRIP_PX
    xs = np.linspace(x0, x0 + STRIP_PX, 33)
    yc = river.centre_y(xs)
    p = river.params
    slope = p["a1"] * 2 * np.pi / p["lam1"] + p["a2"] * 2 * np.pi / p["lam2"]
    pad = (river.max_half_width_m / RES_M + 220) * math.sqrt(1 + slope**2)  # make_mines reaches b + 200
    y0 = int(math.floor(yc.min() - pad))
    h = int(math.ceil(yc.max() + pad)) - y0
    rng = np.random.default_rng(stable_seed(seed, river.seed, river.name, "mines", index))
    mines = make_mines(rng, river.local(x0, y0, h, STRIP_PX), h, STRIP_PX, density)
    return tuple(dataclasses.replace(_moved(m, x0, y0), mine_id=index * 1000 + m.mine_id) for m in mines)


def window_terrain(river: LongRiver, x0: int, y0: int, h: int, w: int, world: WorldParams, key: str) -> Terrain:
    """The Terrain of a window at global (x0, y0); `key` seeds what is drawn per window (fields, villages)."""
    return Terrain(
        f"{river.name}/{key}",
        h,
        w,
        world.seed,
        world.mine_density,
        river=river.local(x0, y0, h, w),
        mines=river.mines(x0, y0, h, w, world.seed, world.mine_density),
        water_key=f"{river.name}/{river.seed}",
    )


def chunk_key(grid: Grid) -> str:
    left, _, _, top = grid.bounds
    return f"{grid.crs.to_epsg()}_{left:.0f}_{top:.0f}_{grid.width}x{grid.height}"


def render_window(
    river: LongRiver, grid: Grid, date: dt.date, world: WorldParams, sig: Signatures
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Pixels of the river on `grid` (any CRS, 10 m, north-up) on `date`.

    A grid on the river's lattice is rendered directly; any other (a chunk in the next UTM zone)
    is rendered on the covering window of the river's CRS and reprojected (bilinear for bands,
    nearest for truth, so its truth is exact only up to that resampling).

    Returns:
        (C, H, W) float32 as `render` gives, the band names, and (H, W) bool truth (mining pixels).
    """
    t = grid.transform
    if not math.isclose(abs(t.a), RES_M) or t.b or t.d or t.e != -t.a:
        raise ValueError(f"render_window needs a north-up {RES_M:g} m grid, not {t}")
    key = chunk_key(grid)
    at = river.offset(grid)
    if at is not None:
        return _render(river, at[0], at[1], grid.height, grid.width, date, world, sig, key)
    e0, n0 = river.origin
    left, bottom, right, top = transform_bounds(grid.crs, river.crs, *grid.bounds, densify_pts=21)
    x0, y0 = math.floor((left - e0) / RES_M) - 2, math.floor((n0 - top) / RES_M) - 2
    w, h = math.ceil((right - e0) / RES_M) + 2 - x0, math.ceil((n0 - bottom) / RES_M) + 2 - y0
    pixels, names, truth = _render(river, x0, y0, h, w, date, world, sig, key)
    src = river.grid(x0, y0, h, w)
    out = np.full((pixels.shape[0], grid.height, grid.width), np.nan, np.float32)
    mask = np.zeros((grid.height, grid.width), np.uint8)
    for arr, dst, how in ((pixels, out, Resampling.bilinear), (truth.astype(np.uint8), mask, Resampling.nearest)):
        reproject(
            arr,
            dst,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            resampling=how,
        )
    return out, names, mask > 0


def _render(
    river: LongRiver,
    x0: int,
    y0: int,
    h: int,
    w: int,
    date: dt.date,
    world: WorldParams,
    sig: Signatures,
    key: str,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    layout = window_terrain(river, x0, y0, h, w, world, key).on(date)
    rng = np.random.default_rng(stable_seed(world.seed, river.name, key, date.isoformat(), "render"))
    pixels, names = render(layout, sig, rng, world.cloud_probability, world.haze_probability)
    return pixels, names, layout.truth


def export_window(
    river: LongRiver,
    grid: Grid,
    date: dt.date,
    bands: list[str],
    world: WorldParams,
    image_path: Path,
    truth_path: Path,
    tags: dict[str, str] | None = None,
) -> None:
    """Write one chunk's image COG (scaled int16, like `world.export`) and truth COG (uint8 'truth')."""
    check_names(bands, "bands")
    sig = load_signatures()
    missing = [b for b in bands if b not in band_names(sig)]
    if missing:
        raise ValueError(f"the synthetic world cannot render bands {missing}")
    pixels, names, truth = render_window(river, grid, date, world, sig)
    ids = {"date": date.isoformat(), "river": river.name, "chunk": chunk_key(grid), **(tags or {})}
    write_image(image_path, pixels[[names.index(b) for b in bands]], bands, grid, {**ids, "recipe": RECIPE})
    write_cog(truth_path, truth.astype(np.uint8), grid, ["truth"], {"source": "synthetic", **ids})


def river_feature(river: LongRiver) -> dict:
    """The centreline as a GeoJSON Feature in EPSG:4326 (a vertex every 100 m), with the river's properties."""
    xs = np.arange(0, river.length_px + 1, 10, dtype=np.float64)
    if xs[-1] != river.length_px:
        xs = np.append(xs, river.length_px)
    e0, n0 = river.origin
    to_lonlat = Transformer.from_crs(river.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(e0 + xs * RES_M, n0 - river.centre_y(xs) * RES_M)
    return {
        "type": "Feature",
        "properties": river.properties(),
        "geometry": {"type": "LineString", "coordinates": [[round(a, 6), round(b, 6)] for a, b in zip(lon, lat)]},
    }


def protected_reaches(
    river: LongRiver, world_seed: int, density: float, between: tuple[dt.date, dt.date], n: int = 3
) -> dict:
    """A FeatureCollection (EPSG:4326) of `n` protected reaches of the river for the survey's alerts.

    Each reach is a corridor 3–5 km along the river, reaching 500 m beyond the widest channel on both
    sides, named `Protected reach A (km 12.3-16.8)` and so on. Drawn from (`world_seed`, river): the
    first `n - 1` are centred on strips holding a mine born within `between` (the middle days of two
    survey periods, so the later period shows it new), the last on a strip picked at random. The
    world's images and truth do not depend on them.
    """
    from shapely.geometry import LineString, mapping

    from sandmine.core.raster import to_crs

    rng = np.random.default_rng(stable_seed(world_seed, river.seed, river.name, "protected reaches"))
    strips = -(-river.length_px // STRIP_PX)
    born = [
        i
        for i in range(strips)
        if any(between[0] < m.born <= between[1] for m in _strip_mines(river, i, world_seed, density))
    ]
    chosen: list[int] = []
    for pool in (born, list(range(strips))):
        want = n - 1 if pool is born else n
        for i in rng.permutation(pool).tolist():
            if len(chosen) >= want:
                break
            if all(abs(i - j) > 2 for j in chosen):  # reaches apart: none inside another
                chosen.append(int(i))
    half = river.max_half_width_m / RES_M + 50  # px: the widest channel and 500 m beyond it
    e0, n0 = river.origin
    features = []
    for k, i in enumerate(sorted(chosen)):
        length = float(rng.uniform(300, 500))  # px
        centre = (i + 0.5) * STRIP_PX
        x0, x1 = max(0.0, centre - length / 2), min(float(river.length_px), centre + length / 2)
        xs = np.linspace(x0, x1, 41)
        line = LineString(zip(e0 + xs * RES_M, n0 - river.centre_y(xs) * RES_M))
        corridor = line.buffer(half * RES_M, cap_style="flat").simplify(5.0)
        geom = to_crs(corridor, river.crs, "EPSG:4326")
        name = f"Protected reach {chr(ord('A') + k)} (km {x0 * RES_M / 1000:.1f}-{x1 * RES_M / 1000:.1f})"
        features.append(
            {
                "type": "Feature",
                "properties": {"name": name, "river": river.name, "synthetic": RECIPE, "world_seed": world_seed},
                "geometry": mapping(geom),
            }
        )
    return {"type": "FeatureCollection", "features": features}
