"""The source interface: what every imagery source gives the stages (observations, survey chunks, rivers)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from shapely.geometry.base import BaseGeometry

from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.files import write_text
from sandmine.core.raster import Grid, utm_zones
from sandmine.core.sites import Observation, Site

# fn, one argument tuple per task, progress label: the caller's task runner (in-process or Dask workers)
Runner = Callable[[Callable[..., object], list[tuple], str], None]


class SurveyChunk(Protocol):
    """A square of a survey as a source sees it (`sandmine.survey.chunks.Chunk`)."""

    @property
    def chunk_id(self) -> str: ...
    @property
    def rivers(self) -> tuple[str, ...]: ...
    @property
    def river_aois(self) -> dict[str, BaseGeometry]: ...
    def grid_with(self, halo_px: int) -> Grid: ...
    def bounds_4326(self, halo_px: int = 0) -> tuple[float, float, float, float]: ...


class SurveyPeriod(Protocol):
    """A span of days, both ends included (`sandmine.survey.periods.Period`)."""

    @property
    def start(self) -> dt.date: ...
    @property
    def end(self) -> dt.date: ...
    @property
    def label(self) -> str: ...
    @property
    def days(self) -> int: ...
    @property
    def middle(self) -> dt.date: ...


class SurveyRiver(Protocol):
    """A river of a survey: its name and the properties of its first feature (`sandmine.survey.rivers.River`)."""

    @property
    def name(self) -> str: ...
    @property
    def properties(self) -> dict: ...


@dataclass(frozen=True)
class ChunkImage:
    """The image of one (chunk, period), the exact truth where the source knows it, and whether it came
    from the cache (Earth Engine and STAC keep their own caches: always False there)."""

    image: Path
    truth: Path | None = None
    cached: bool = False


ChunkImages = dict[tuple[str, str], ChunkImage]  # (chunk_id, period label) -> image


class Source(ABC):
    """One way of turning the outside world into the files of the source boundary; built from the params."""

    kind: ClassVar[str]  # the value of `source.kind`
    synthetic: ClassVar[bool] = False  # the embedded world: images are not real, the truth is exact

    def __init__(self, p: Params) -> None:
        self.p = p

    @abstractmethod
    def export_observations(
        self,
        sites: dict[str, Site],
        observations: list[Observation],
        images_dir: Path,
        source_dir: Path,
        previews_dir: Path | None,
    ) -> None:
        """`images_dir/{obs_id}.tif` on each site's UTM grid and `manifest.csv`; in `source_dir` what the source
        delivers besides (`rivers.geojson` always; labels and exact truth where it has them)."""

    @abstractmethod
    def export_chunks(
        self,
        rivers: Sequence[SurveyRiver],
        chunks: Sequence[SurveyChunk],
        periods: Sequence[SurveyPeriod],
        halo_px: int,
        cache: Path,
        run: Runner,
    ) -> ChunkImages:
        """The image of every (chunk, period) on the chunk's grid grown by `halo_px`, exporting only what is
        not cached (in `cache`, the survey's cache folder, or the source's own)."""

    def rivers(self, sites: dict[str, Site]) -> dict:
        """The rivers near the sites as a GeoJSON FeatureCollection (EPSG:4326): `source.rivers_file`, or none
        (the AOI's water index then needs none)."""
        from sandmine.core.vectors import rivers_geojson

        if not self.p.source.rivers_file:
            return {"type": "FeatureCollection", "features": []}
        return rivers_geojson(Path(self.p.source.rivers_file), self.p.source.rivers_layer)

    @abstractmethod
    def covers(self) -> str:
        """What must hold for a site to have images (in the message about an empty image)."""

    def image_extent(self, obs_id: str) -> str:
        """Where the source's own image of `obs_id` lies (for messages about an empty image); '' if unknown."""
        return ""

    def write_rivers(self, sites: dict[str, Site], source_dir: Path) -> None:
        write_text(source_dir / "rivers.geojson", json.dumps(self.rivers(sites)) + "\n")


def cache_key(data: object) -> str:
    """A short, stable key of everything that decides a cached file's pixels."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_one_zone(site_id: str, bounds_4326: tuple[float, float, float, float]) -> None:
    """A site must lie in one UTM zone: its image is exported on that zone's grid. A site touching a
    zone boundary belongs to the zone it lies in (`raster.utm_zones`).
    """
    west, _, east, _ = bounds_4326
    if east - west > 180.0:  # a polygon across 180° reads as one around the whole world
        raise SandmineError(
            f"site '{site_id}' spans {east - west:.1f}° of longitude (bounds {west}..{east}): it crosses the "
            "antimeridian (180°), or its coordinates are not [lon, lat]",
            "data/sites.geojson",
            "split the site at 180° into two sites (one ending at 180, one starting at -180), one per zone",
        )
    zones = utm_zones(west, east)
    if len(zones) > 1:
        edges = ", ".join(f"{z * 6 - 180}° E" for z in zones[:-1])
        count = "two" if len(zones) == 2 else str(len(zones))
        names = f"{', '.join(map(str, zones[:-1]))} and {zones[-1]}"
        raise SandmineError(
            f"site '{site_id}' spans {count} UTM zones ({names}, boundar{'y' if len(zones) == 2 else 'ies'} at "
            f"{edges}): its longitudes run {west}..{east}",
            "data/sites.geojson",
            f"split the site at {edges} into {count} sites, one per zone (an edge exactly on a boundary is fine)",
        )


def write_manifest(observations: list[Observation], grids: dict[str, Grid], images: Path, source: str) -> None:
    """`images/manifest.csv`: one row per observation (file, grid, source)."""
    rows = []
    for o in sorted(observations, key=lambda o: o.obs_id):
        grid = grids[o.site_id]
        row = [o.obs_id, o.site_id, o.date.isoformat(), o.role, f"{o.obs_id}.tif", grid.crs.to_string()]
        rows.append([*row, grid.height, grid.width, source])
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["obs_id", "site_id", "date", "role", "file", "crs", "height", "width", "source"])
    out.writerows(rows)
    write_text(images / "manifest.csv", buf.getvalue())
