"""STAC export (source.kind: stac): account-free Sentinel-2 L2A and Sentinel-1 from a STAC API, one image
per observation or survey chunk, in the format the rest of the pipeline reads.

Per job (a site's or chunk's lon/lat box, its UTM grid at 10 m and the days [start, end)):

- search the catalogue (`pystac-client`, retries with back-off) by box and dates in `stac.collections`;
- Sentinel-2: items with `eo:cloud_cover` ≤ `stac.max_cloud`, read lazily with `odc-stac` onto the grid
  (bilinear for reflectance, nearest for SCL; only the COG tiles over the grid are fetched), `raster:bands`
  scale/offset applied, pixels of the SCL classes `stac.mask_classes` masked, the median over the items;
- Sentinel-1 (when `bands` has VV or VH): IW items' VV/VH, linear power -> dB, the median;
- CLOUD: the share of Sentinel-2 items with data at a pixel whose SCL class was masked (0 clear … 1).

Stored as int16 like every source (`sources.stored`), tags `source: stac`, the dates and the item ids;
cached in `stac.cache_dir` by what determines the pixels, so a re-run reads only new jobs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sandmine.core.bands import S1
from sandmine.core.config import StacParams
from sandmine.core.errors import SandmineError
from sandmine.core.files import atomic_path
from sandmine.core.raster import Grid, grid_for_bounds, write_cog
from sandmine.core.sites import Observation, Site
from sandmine.sources.base import (
    ChunkImage,
    ChunkImages,
    Runner,
    Source,
    SurveyChunk,
    SurveyPeriod,
    SurveyRiver,
    check_one_zone,
    write_manifest,
)
from sandmine.sources.stac import catalogue, composite
from sandmine.sources.stac.catalogue import S2_ASSETS, StacSettings, window
from sandmine.sources.stored import NODATA, store

log = logging.getLogger(__name__)
BANDS = [*S2_ASSETS, *S1, "CLOUD"]  # what a STAC export can hold (L2A has no B10)

__all__ = ["BANDS", "Job", "StacSettings", "StacSource", "check_bands", "export", "export_survey", "settings", "window"]


def settings(params: StacParams) -> StacSettings:
    """The `stac` section of params.yaml as settings, its URL and SCL classes checked."""
    catalogue.check_url(params.url)
    wrong = [c for c in params.mask_classes if not (isinstance(c, int) and 0 <= c <= 11)]
    if wrong:
        raise SandmineError(f"SCL classes {wrong} do not exist", "params.yaml: stac.mask_classes", "use classes 0 … 11")
    return StacSettings(
        url=params.url,
        collections=tuple(params.collections),
        max_cloud=params.max_cloud,
        window_days=params.window_days,
        mask_classes=tuple(params.mask_classes),
        max_items=params.max_items,
        retries=params.retries,
        backoff_s=params.backoff_s,
        timeout_s=params.timeout_s,
        chunk_px=params.chunk_px,
        threads=params.threads,
    )


@dataclass(frozen=True)
class Job:
    """One image to export: `job_id` (obs_id or chunk × period), who it is for (in messages), the lon/lat
    box searched, the days [start, end) composited, the grid written and the image's own tags (date, obs_id)."""

    job_id: str
    who: str
    bounds: tuple[float, float, float, float]
    start: dt.date
    end: dt.date
    grid: Grid
    tags: dict[str, str] = field(default_factory=dict, hash=False)


def check_bands(bands: list[str]) -> None:
    """Refuse bands a STAC export cannot give."""
    missing = [b for b in bands if b not in BANDS]
    if missing:
        raise SandmineError(
            f"STAC exports have no band(s) {missing} (Sentinel-2 L2A has no B10)",
            "params.yaml: bands",
            f"choose among {', '.join(BANDS)}",
        )


def cache_key(job: Job, bands: list[str], s: StacSettings) -> str:
    """Exports are cached by what determines their pixels (not by retries, threads or chunking)."""
    t = job.grid.transform
    what = {
        "bounds": [round(b, 7) for b in job.bounds],
        "days": [job.start.isoformat(), job.end.isoformat()],
        "grid": [job.grid.crs.to_string(), [t.a, t.b, t.c, t.d, t.e, t.f], job.grid.height, job.grid.width],
        "bands": bands,
        "settings": {k: v for k, v in asdict(s).items() if k in ("url", "collections", "max_cloud", "mask_classes")},
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def export_one(cat: object, job: Job, bands: list[str], s: StacSettings, dst: Path) -> None:
    """Search, composite and write one job's image to `dst`."""
    items, what = catalogue.search(cat, s, job.bounds, job.start, job.end)
    s2_bands = [b for b in bands if b in S2_ASSETS]
    s1_bands = [b for b in bands if b in S1]
    parts: list[object] = []
    used: list = []
    if s2_bands or "CLOUD" in bands:
        s2, cloudy = catalogue.optical(items, s)
        if not s2:
            raise catalogue.missing(what, job.who, "Sentinel-2 (with an SCL band)", s, cloudy)
        parts += composite.optical(s2, s2_bands, job.grid, s)
        used += s2
    if s1_bands:
        s1 = catalogue.radar(items)
        if not s1:
            raise catalogue.missing(what, job.who, "Sentinel-1 (VV and VH)", s)
        parts.append(composite.backscatter(s1, s1_bands, job.grid, s))
        used += s1
    log.info("%s: %d item(s) from %s", job.who, len(used), what)
    try:
        values = composite.compute(parts, s)
    except (OSError, RuntimeError) as exc:  # rasterio's RasterioIOError is an OSError; GDAL/curl failures
        raise SandmineError(
            f"{job.who}: reading the items' COGs failed ({type(exc).__name__}: {exc})",
            str(what),
            f"busy answers were retried {s.retries} time(s) with back-off: re-run later, or raise stac.retries "
            "and stac.backoff_s",
        ) from exc
    layers: dict[str, np.ndarray] = {}
    if s2_bands or "CLOUD" in bands:
        layers |= dict(zip(s2_bands, values[0])) | {"CLOUD": values[1]}
    if s1_bands:
        layers |= dict(zip(s1_bands, values[-1]))
    data = np.stack([layers[b] for b in bands]).astype(np.float32)
    if not np.isfinite(data).any():
        raise SandmineError(
            f"{job.who}: every pixel is masked (no clear pixel in {len(used)} item(s))",
            str(what),
            "widen stac.window_days, or check stac.mask_classes",
        )
    stored, scales = store(data, bands)
    tags = {
        "source": "stac",
        "date_start": job.start.isoformat(),
        "date_end": (job.end - dt.timedelta(days=1)).isoformat(),
        "stac_url": s.url,
        "stac_items": ",".join(i.id for i in used),
        **job.tags,
    }
    write_cog(dst, stored, job.grid, bands, tags, nodata=NODATA, scales=scales, resampling="average")


def export(jobs: list[Job], bands: list[str], s: StacSettings, cache_dir: Path) -> dict[str, Path]:
    """Export every job not already in `cache_dir`; the cached COG of each job.

    Jobs that fail are reported together in one error after the others have been cached, so a re-run
    exports only them.
    """
    from tqdm import tqdm

    check_bands(bands)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {j.job_id: cache_dir / f"{j.job_id}-{cache_key(j, bands, s)}.tif" for j in jobs}
    todo = [j for j in jobs if not paths[j.job_id].exists()]
    log.info("STAC: %d of %d images cached, %d to export", len(jobs) - len(todo), len(jobs), len(todo))
    if not todo:
        return paths
    cat = catalogue.client(s)
    composite.configure_gdal(s)
    failures: dict[str, SandmineError] = {}
    for job in tqdm(todo, desc="export (stac)", unit="image"):
        try:
            export_one(cat, job, bands, s, paths[job.job_id])
        except SandmineError as exc:
            failures[job.job_id] = exc
    if len(todo) == 1 and failures:
        raise next(iter(failures.values()))
    if failures:
        lines = "\n".join(f"  {k}: {e.what}\n    search: {e.where}" for k, e in sorted(failures.items()))
        fixes = "; ".join(dict.fromkeys(e.fix for e in failures.values() if e.fix))
        raise SandmineError(
            f"{len(failures)} of {len(todo)} STAC exports failed (the others are cached):\n{lines}",
            str(cache_dir),
            f"{fixes}; then re-run: only the failed ones are exported again",
        )
    return paths


def export_survey(
    chunks: list, periods: list, halo_px: int, bands: list[str], s: StacSettings, cache_dir: str
) -> dict[tuple[str, str], Path]:
    """The composite of every (survey chunk, period) over the whole period, on the chunk's grid with its halo:
    {(chunk_id, period label): cached COG}. `chunks` and `periods` are `sandmine.survey`'s Chunk and Period."""
    jobs = []
    for q in periods:
        for c in chunks:
            job_id = f"{c.chunk_id}_h{halo_px}_{q.label}"
            who = f"survey chunk '{c.chunk_id}', period {q.start}/{q.end}"
            tags = {"date": q.middle.isoformat(), "chunk_id": c.chunk_id, "period": q.label, "halo_px": str(halo_px)}
            end = q.end + dt.timedelta(days=1)  # periods include their last day
            jobs.append(Job(job_id, who, c.bounds_4326(halo_px), q.start, end, c.grid_with(halo_px), tags))
    done = export(jobs, bands, s, Path(cache_dir).expanduser())
    return {(c.chunk_id, q.label): done[f"{c.chunk_id}_h{halo_px}_{q.label}"] for q in periods for c in chunks}


class StacSource(Source):
    """A STAC catalogue (source.kind: stac): composites per observation or survey chunk, rivers from a file."""

    kind = "stac"

    def covers(self) -> str:
        return "the STAC catalogue has Sentinel-2/1 items of the site within 'stac.window_days' of the date"

    def export_observations(
        self,
        sites: dict[str, Site],
        observations: list[Observation],
        images_dir: Path,
        source_dir: Path,
        previews_dir: Path | None,
    ) -> None:
        """STAC composites (cached per observation), rivers from source.rivers_file, and the manifest."""
        p = self.p
        s = settings(p.stac)
        check_bands(p.bands)
        for sid, site in sites.items():
            check_one_zone(sid, site.geometry.bounds)
        grids = {sid: grid_for_bounds(site.geometry.bounds) for sid, site in sites.items()}
        jobs = []
        for o in observations:
            start, end = window(o.date, s.window_days)
            who = f"observation '{o.obs_id}' (site '{o.site_id}', {o.date.isoformat()})"
            tags = {"date": o.date.isoformat(), "obs_id": o.obs_id, "site_id": o.site_id}
            jobs.append(Job(o.obs_id, who, sites[o.site_id].geometry.bounds, start, end, grids[o.site_id], tags))
        cached = export(jobs, p.bands, s, Path(p.stac.cache_dir).expanduser())
        for o in observations:
            with atomic_path(images_dir / f"{o.obs_id}.tif") as tmp:
                shutil.copyfile(cached[o.obs_id], tmp)
        write_manifest(observations, grids, images_dir, "stac")
        self.write_rivers(sites, source_dir)

    def export_chunks(
        self,
        rivers: Sequence[SurveyRiver],
        chunks: Sequence[SurveyChunk],
        periods: Sequence[SurveyPeriod],
        halo_px: int,
        cache: Path,
        run: Runner,
    ) -> ChunkImages:
        """A composite over each whole period per chunk, through the source's own cache (`stac.cache_dir`)."""
        p = self.p
        done = export_survey(list(chunks), list(periods), halo_px, p.bands, settings(p.stac), p.stac.cache_dir)
        return {key: ChunkImage(path) for key, path in done.items()}
