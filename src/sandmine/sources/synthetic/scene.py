"""Compose one observation's layout: floodplain, confusers, river on that date, and mines."""

from __future__ import annotations

import datetime as dt

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from shapely.affinity import translate
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from sandmine.sources.synthetic.layout import (
    Layout,
    Mine,
    River,
    _blob,
    _thread,
    burn,
    green_fraction,
    make_mines,
    make_river,
    season_water_fraction,
    smooth_noise,
    stable_seed,
)
from sandmine.sources.synthetic.materials import CODE


class Terrain:
    """The static geography of one synthetic site (or any window of a long river); `on(date)` lays it out for a date."""

    def __init__(
        self,
        site_id: str,
        h: int,
        w: int,
        seed: int,
        mine_density: float,
        river: River | None = None,
        mines: list[Mine] | None = None,
        water_key: str | None = None,
    ) -> None:
        """Draw the site's geography from (seed, site_id).

        A window of a long river (`river.py`) passes its own `river` and `mines` (continuous across
        windows) and a `water_key` that draws the season's water level per river, not per window;
        without them the site is drawn exactly as it always was.
        """
        self.site_id, self.h, self.w, self.seed, self.water_key = site_id, h, w, seed, water_key
        rng = np.random.default_rng(stable_seed(seed, site_id, "static"))
        self.river: River = make_river(rng, h, w) if river is None else river
        self.u, self.n = self.river.frame(h, w)
        self.b = self.river.half_width(self.u)
        self.mines: list[Mine] = make_mines(rng, self.river, h, w, mine_density) if mines is None else mines
        self.channel = self.river.channel_polygon(h, w)
        self._floodplain(rng)

    def _floodplain(self, rng: np.random.Generator) -> None:
        """Fields (Voronoi cells), villages, roads, kilns, oxbow lakes, construction, tributary."""
        h, w = self.h, self.w
        n_cells = max(4, h * w // 140)
        seeds = rng.uniform([0, 0], [w, h], size=(n_cells, 2))
        tree = cKDTree(seeds)
        self.cells = np.empty((h, w), np.int32)
        xs = np.arange(w, dtype=np.float32) + 0.5
        for r0 in range(0, h, 256):  # in row blocks: the query's temporaries are 32 B a pixel
            ys = np.arange(r0, min(h, r0 + 256), dtype=np.float32) + 0.5
            yy, xx = np.meshgrid(ys, xs, indexing="ij")
            self.cells[r0 : r0 + ys.size] = tree.query(np.c_[xx.ravel(), yy.ravel()])[1].reshape(ys.size, w) + 1
        self.cell_rank = rng.uniform(size=n_cells + 1)  # which cells go green first
        far = np.abs(self.n) - self.b
        per_area = 1 + h * w // 100_000  # more settlements on larger scenes
        self.features: list[tuple[Polygon | LineString, str]] = []
        for _ in range(int(rng.integers(1, 3)) * per_area):  # villages
            y, x = self._pick(rng, (far > 20) & (far < 300))
            self.features.append((_blob(rng, x, y, rng.uniform(8, 20), 1.3, rng.uniform(0, 3)), "urban"))
        for _ in range(int(rng.integers(1, 3)) * per_area):  # roads
            a = rng.uniform(0, np.pi)
            y, x = self._pick(rng, far > 10)
            d = np.array([np.cos(a), np.sin(a)]) * (h + w)
            self.features.append((LineString([(x - d[0], y - d[1]), (x + d[0], y + d[1])]), "road"))
        if rng.uniform() < 0.55:  # brick kilns: bright rim, dark firing chamber, clay pits
            for _ in range(int(rng.integers(1, 3)) * per_area):
                y, x = self._pick(rng, (far > 8) & (far < 150))
                kiln = _blob(rng, x, y, 4, 1.8, rng.uniform(0, 3), k=6)
                self.features.append((kiln.buffer(3), "soil"))
                self.features.append((kiln.boundary.buffer(0.8), "urban"))
                self.features.append((kiln.buffer(-1.5), "kiln_core"))
        if rng.uniform() < 0.45:  # oxbow lake: a cut-off meander on the floodplain
            y, x = self._pick(rng, (far > 25) & (far < 100))
            r = rng.uniform(15, 30)
            arc = Point(x, y).buffer(r).exterior
            a0 = rng.uniform(0, 2 * np.pi)
            pts = [
                arc.interpolate(((a0 + t) % (2 * np.pi)) / (2 * np.pi), normalized=True)
                for t in np.linspace(0, 4.0, 30)
            ]
            self.features.append((LineString(pts).buffer(rng.uniform(2, 4)), "lake_water"))
        if rng.uniform() < 0.4:  # construction site: cleared soil with sheds
            y, x = self._pick(rng, (far > 10) & (far < 120))
            site = Polygon([(x, y), (x + rng.uniform(8, 20), y), (x + 15, y + rng.uniform(8, 18)), (x, y + 12)])
            self.features.append((site, "soil"))
            self.features.append((Point(x + 4, y + 4).buffer(2), "urban"))
        if rng.uniform() < 0.45:  # dry tributary bed: natural sand outside the main channel
            y, x = self._pick(rng, (far > 60) & (far < 200))
            cy, cx = self._nearest_channel(y, x)
            pts = [
                (x + (cx - x) * t + rng.normal(0, 3), y + (cy - y) * t + rng.normal(0, 3))
                for t in np.linspace(-0.5, 1.0, 12)
            ]
            self.features.append((LineString(pts).buffer(rng.uniform(2, 5)), "dry_sand"))
        self.static_noise = smooth_noise(rng, (h, w), 12.0)

    def _pick(self, rng: np.random.Generator, mask: np.ndarray) -> tuple[float, float]:
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            idx = np.arange(self.h * self.w)
        y, x = np.unravel_index(idx[rng.integers(idx.size)], (self.h, self.w))
        return float(y) + 0.5, float(x) + 0.5

    def _nearest_channel(self, y: float, x: float) -> tuple[float, float]:
        p = nearest_points(self.channel.boundary, Point(x, y))[0]  # channel may be a MultiPolygon
        return p.y, p.x

    def on(self, date: dt.date) -> Layout:
        """Lay the site out as it is on `date` (water level, crops, mines)."""
        rng = np.random.default_rng(stable_seed(self.seed, self.site_id, date.isoformat()))
        h, w, u, n, b = self.h, self.w, self.u, self.n, self.b
        shape = (h, w)
        green = self.cell_rank[self.cells] < green_fraction(date) + rng.normal(0, 0.05)
        material = np.where(green, CODE["crop"], CODE["soil"]).astype(np.uint8)
        objects = self.cells.copy()
        next_id = int(objects.max()) + 1
        full = (slice(0, h), slice(0, w))
        alphas: dict[int, np.ndarray] = {}

        def blend(code: int, win: tuple[slice, slice], alpha: np.ndarray) -> None:
            """Paint `code` over the base with `alpha` (one map per material, overlaps keep the max)."""
            arr = alphas.setdefault(code, np.zeros(shape, np.float32))
            np.maximum(arr[win], alpha, out=arr[win])

        for geom, kind in self.features:
            if kind == "road":
                blend(CODE["gravel_road"], full, burn(shape, geom.buffer(0.9)).astype(np.float32) * 0.55)
                continue
            m = burn(shape, geom)
            if kind == "kiln_core":
                material[m] = CODE["urban"]
                blend(CODE["pit_pond"], full, m.astype(np.float32) * 0.6)  # dark fired chamber
            else:
                material[m] = CODE[kind]
            objects[m] = next_id
            next_id += 1

        # river on this date: the riparian fringe, bars, and one or two water threads
        riparian = np.abs(n) < b + self.river.params["riparian"] * (1 + 0.5 * self.static_noise)
        material[riparian] = CODE["riparian"]
        objects[riparian] = next_id
        next_id += 1
        jitter = float(rng.uniform(0.85, 1.15))  # drawn either way: the stream stays the same
        if self.water_key is not None:
            level = np.random.default_rng(stable_seed(self.seed, self.water_key, date.isoformat()))
            jitter = float(level.uniform(0.85, 1.15))
        frac = season_water_fraction(date) * jitter
        thread = _thread(self.river, u, b)
        wobble = 2 * np.pi * u / self.river.params["lamb"] * 1.7 + self.river.params.get("phww", 0.0)
        ww = b * frac * (1 + 0.2 * np.sin(wobble))
        channel = np.abs(n) < b
        water = channel & (np.abs(n - thread) < ww)
        if self.river.params["braided"]:
            water |= channel & (np.abs(n + 0.9 * thread) < ww * 0.35)
        if frac > 0.75:  # monsoon: the channel is full
            water |= np.abs(n) < b * frac
        sand = channel & ~water
        bars, nbars = ndimage.label(sand)
        material[sand] = CODE["dry_sand"]
        objects[sand] = bars[sand] + next_id
        next_id += nbars + 1
        dist_water = ndimage.distance_transform_edt(~water)
        wet_width = 2.0 + 6.0 * frac
        moisture = np.clip(1.0 - dist_water / wet_width, 0, 1) * sand
        moisture = np.maximum(moisture, np.clip(self.static_noise - 1.2, 0, 1) * sand)
        material[(moisture > 0.55)] = CODE["wet_sand"]
        material[water] = CODE["river_water"]
        objects[water] = next_id
        next_id += 1

        truth = np.zeros(shape, bool)
        present: list[tuple[Mine, str]] = []
        barges: list[tuple[int, int]] = []
        for mine in self.mines:
            state = mine.state(date)
            if state is None:
                continue
            # work inside the mine's window (its road reaches the bank): cost follows the mine, not the scene
            reach = mine.shape if mine.road is None else mine.shape.union(mine.road.buffer(1))
            minx, miny, maxx, maxy = reach.bounds
            r0, r1 = max(0, int(miny) - 6), min(h, int(maxy) + 7)
            c0, c1 = max(0, int(minx) - 6), min(w, int(maxx) + 7)
            if r0 >= r1 or c0 >= c1:
                continue
            win = (slice(r0, r1), slice(c0, c1))
            sub = (r1 - r0, c1 - c0)
            dry = ~water[win]

            def local(g: BaseGeometry, r0: int = r0, c0: int = c0) -> BaseGeometry:
                return translate(g, -c0, -r0)

            area = burn(sub, local(mine.shape)) & dry
            if not area.any():
                continue
            present.append((mine, state))
            truth[win] |= area
            mat, obj = material[win], objects[win]
            mat[area] = CODE["scar"]
            obj[area] = next_id
            next_id += 1
            if state == "abandoned":  # scar weathers back towards the bar it was dug from
                blend(CODE["dry_sand"], win, area * np.float32(0.5))
            pit_code = CODE["pit_pond_algal"] if mine.mine_id % 2 else CODE["pit_pond"]
            flooded = state in ("flooded", "abandoned") or not mine.in_channel
            for pit in mine.pits:
                pm = burn(sub, local(pit.buffer(1.0 if flooded else 0.0))) & dry
                mat[pm] = pit_code if flooded else CODE["wet_sand"]
            for pile in mine.stockpiles:
                mat[burn(sub, local(pile)) & dry] = CODE["stockpile"]
            if mine.road is not None and state != "abandoned":
                road = burn(sub, local(mine.road.buffer(0.7))) & dry
                blend(CODE["gravel_road"], win, road * np.float32(0.45))
                truth[win] |= road & area
            near = ndimage.binary_dilation(area, iterations=3) & water[win]
            if near.any() and state == "active" and mine.in_channel:
                ys, xs = np.nonzero(near)
                cy, cx = int(ys.mean()) + r0, int(xs.mean()) + c0
                length = rng.uniform(20, 150)
                # the plume drifts downstream: a window reaching 5 lengths along the river
                pr0, pr1 = max(0, cy - int(5 * length)), min(h, cy + int(5 * length) + 1)
                pc0, pc1 = max(0, cx - int(5 * length)), min(w, cx + int(5 * length) + 1)
                pwin = (slice(pr0, pr1), slice(pc0, pc1))
                du = u[pwin] - u[cy, cx]
                plume = np.exp(-np.clip(du, 0, None) / length) * (du > -3) * water[pwin]
                blend(CODE["plume"], pwin, (plume * rng.uniform(0.4, 0.9)).astype(np.float32))
                if rng.uniform() < 0.5:
                    k = int(rng.integers(ys.size))
                    barges.append((int(ys[k]) + r0, int(xs[k]) + c0))

        ignore: list[Polygon] = []
        sand_idx = np.flatnonzero(sand & ~truth)
        for _ in range(int(rng.integers(0, 3))):  # areas an annotator could not decide on
            if sand_idx.size:
                y, x = np.unravel_index(sand_idx[rng.integers(sand_idx.size)], shape)
                ignore.append(_blob(rng, x + 0.5, y + 0.5, rng.uniform(4, 9), 1.5, self.river.theta))
        return Layout(
            material,
            objects,
            [(a, code) for code, a in sorted(alphas.items())],
            truth,
            present,
            ignore,
            barges,
            self.channel,
            moisture.astype(np.float32),
            {"water_fraction": frac},
        )
