"""Earth Engine export: one image per observation, in the format the rest of the pipeline reads.

Per observation, over `window_days` around its date and the site's rectangle:

- a Sentinel-2 median composite, L2A (`COPERNICUS/S2_SR_HARMONIZED`, 12 bands) or L1C
  (`COPERNICUS/S2_HARMONIZED`, 13 bands with B10, for encoders pretrained on L1C), with
  per-pixel Cloud Score+ masking (`cs_cdf >= cs_threshold`);
- a Sentinel-1 GRD IW median of VV and VH in dB;
- CLOUD: 1 − the median Cloud Score+ `cs_cdf` (0 clear … 1 cloudy), over all images.

Stored as int16 like the embedded world: reflectance × 1e4, dB × 100, CLOUD × 1e4, nodata
−32768, on the site's UTM grid at 10 m. Exported as batch tasks to a bucket (started, polled with
backoff, retried when Earth Engine says it is busy, each failure reported while the others go
on) and downloaded with gcsfs, or for small regions fetched directly with `computePixels`.
Band names, scales and tags are then written the way `raster.read_image` reads them.

Credentials never come from params: a service-account key file named by
`SANDMINE_EE_SERVICE_ACCOUNT_KEY` (or `GOOGLE_APPLICATION_CREDENTIALS`), else application default
credentials (`earthengine authenticate` / `gcloud auth application-default login`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandmine.core.bands import S2_L2A
from sandmine.core.errors import SandmineError
from sandmine.core.files import atomic_path
from sandmine.core.raster import Grid, grid_for_bounds
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
from sandmine.sources.stored import NODATA, SCALES

log = logging.getLogger(__name__)

S2_COLLECTIONS = {"L2A": "COPERNICUS/S2_SR_HARMONIZED", "L1C": "COPERNICUS/S2_HARMONIZED"}
S2_BANDS = {"L2A": S2_L2A, "L1C": [*S2_L2A[:10], "B10", *S2_L2A[10:]]}
CLOUD_SCORE = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
S1_COLLECTION = "COPERNICUS/S1_GRD"
BUSY = ("too many tasks", "quota", "resource_exhausted", "rate limit", "429", "try again")


@dataclass(frozen=True)
class ExportSettings:
    """What to export and how (the `gee` section of params.yaml)."""

    product: str = "L2A"
    window_days: int = 30
    cs_threshold: float = 0.6
    bucket: str = ""
    prefix: str = "sandmine/exports"
    max_retries: int = 3
    poll_s: float = 30.0

    def bands(self) -> list[str]:
        return [*S2_BANDS[self.product], "VV", "VH", "CLOUD"]


def credentials() -> Any:
    """Credentials for ee.Initialize: a service-account key from the environment, else None
    (application default credentials). The key's contents are never logged."""
    import ee

    path = os.environ.get("SANDMINE_EE_SERVICE_ACCOUNT_KEY") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        return None
    if not Path(path).is_file():
        raise SandmineError(
            "the Earth Engine service-account key file does not exist",
            "environment SANDMINE_EE_SERVICE_ACCOUNT_KEY / GOOGLE_APPLICATION_CREDENTIALS",
            "point it at the JSON key of a service account registered for Earth Engine",
        )
    try:
        email = json.loads(Path(path).read_text())["client_email"]
    except (ValueError, KeyError) as exc:
        raise SandmineError("not a service-account JSON key (no client_email)", path) from exc
    return ee.ServiceAccountCredentials(email, path)


def initialize(project: str) -> None:
    """ee.Initialize with the credentials above; a clear error when there are none."""
    import ee

    if not project:
        raise SandmineError(
            "'gee.project' is empty", "params.yaml", "name the Cloud project registered for Earth Engine"
        )
    try:
        ee.Initialize(credentials(), project=project)
    except ee.EEException as exc:
        raise SandmineError(
            f"Earth Engine refused the credentials ({exc})",
            "environment",
            "set SANDMINE_EE_SERVICE_ACCOUNT_KEY to a key file, or run `earthengine authenticate`",
        ) from exc


def composite(region_4326: list[float], date: str, s: ExportSettings) -> Any:
    """The ee.Image of one observation: S2 median (Cloud Score+ masked), S1 VV/VH median in dB,
    CLOUD; scaled to int16 with the band names of the catalogue."""
    import ee

    day = dt.date.fromisoformat(date)
    start = (day - dt.timedelta(days=s.window_days // 2)).isoformat()
    end = (day + dt.timedelta(days=s.window_days - s.window_days // 2)).isoformat()
    region = ee.Geometry.Rectangle(region_4326, "EPSG:4326", False)
    s2_bands = S2_BANDS[s.product]
    s2 = (
        ee.ImageCollection(S2_COLLECTIONS[s.product])
        .filterBounds(region)
        .filterDate(start, end)
        .linkCollection(ee.ImageCollection(CLOUD_SCORE), ["cs_cdf"])
    )
    threshold = s.cs_threshold

    def clear(img: Any) -> Any:
        return img.updateMask(img.select("cs_cdf").gte(threshold))

    optical = s2.map(clear).select(s2_bands).median().divide(10_000)  # DN -> reflectance
    cloud = ee.Image(1).subtract(s2.select("cs_cdf").median()).rename("CLOUD")
    radar = (
        ee.ImageCollection(S1_COLLECTION)
        .filterBounds(region)
        .filterDate(start, end)
        .filter(ee.Filter.eq("instrumentMode", "IW"))
        .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV"))
        .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
        .select(["VV", "VH"])
        .median()  # COPERNICUS/S1_GRD is already in dB
    )
    stored = ee.Image.cat(
        optical.multiply(1 / SCALES["reflectance"]),
        radar.multiply(1 / SCALES["dB"]),
        cloud.multiply(1 / SCALES["score"]),
    )
    return stored.round().clamp(-32767, 32767).unmask(NODATA).toInt16().rename(s.bands())


def _grid_args(grid: Grid) -> dict[str, Any]:
    t = grid.transform
    return {
        "crs": grid.crs.to_string(),
        "crsTransform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "dimensions": f"{grid.width}x{grid.height}",
    }


def export_task(image: Any, obs_id: str, grid: Grid, s: ExportSettings) -> Any:
    """An unstarted batch task writing a COG of `image` on `grid` to gs://bucket/prefix/obs_id.tif."""
    import ee

    if not s.bucket:
        raise SandmineError("'gee.bucket' is empty", "params.yaml", "name a bucket, or use gee.mode: direct")
    return ee.batch.Export.image.toCloudStorage(
        image=image,
        description=f"sandmine_{obs_id}"[:100],
        bucket=s.bucket,
        fileNamePrefix=f"{s.prefix}/{obs_id}",
        fileFormat="GeoTIFF",
        formatOptions={"cloudOptimized": True, "noData": NODATA},
        maxPixels=int(1e10),
        **_grid_args(grid),
    )


def compute_pixels(image: Any, grid: Grid) -> bytes:
    """A small region fetched directly (no bucket) as GeoTIFF bytes, on `grid`."""
    import ee

    t = grid.transform
    request = {
        "expression": image,
        "fileFormat": "GEO_TIFF",
        "grid": {
            "dimensions": {"width": grid.width, "height": grid.height},
            "affineTransform": {
                "scaleX": t.a,
                "shearX": t.b,
                "translateX": t.c,
                "shearY": t.d,
                "scaleY": t.e,
                "translateY": t.f,
            },
            "crsCode": grid.crs.to_string(),
        },
    }
    try:
        return ee.data.computePixels(request)
    except ee.EEException as exc:
        raise SandmineError(
            f"Earth Engine could not compute the pixels ({exc})",
            "computePixels",
            "for large sites use gee.mode: batch with a bucket",
        ) from exc


@dataclass
class Outcome:
    """What became of one observation's export."""

    obs_id: str
    state: str  # COMPLETED | FAILED | CANCELLED
    attempts: int = 1
    error: str = ""
    uris: list[str] = field(default_factory=list)


def run_tasks(
    make_task: dict[str, Callable[[], Any]],
    s: ExportSettings,
    sleep: Callable[[float], None] = time.sleep,
    max_wait_s: float = 6 * 3600,
) -> dict[str, Outcome]:
    """Start every task, poll with exponential backoff until all finish, retry busy failures.

    A failure that says Earth Engine is busy (quota, too many tasks) is retried up to
    `s.max_retries` times with a fresh task; other failures are reported and the rest go on.
    """
    running: dict[str, tuple[Any, int]] = {}
    outcomes: dict[str, Outcome] = {}
    for obs_id, make in make_task.items():
        task = make()
        task.start()
        running[obs_id] = (task, 1)
    delay, waited = s.poll_s, 0.0
    while running:
        sleep(delay)
        waited += delay
        for obs_id, (task, attempt) in list(running.items()):
            status = task.status()
            state = status.get("state", "UNKNOWN")
            if state == "COMPLETED":
                outcomes[obs_id] = Outcome(obs_id, state, attempt, uris=list(status.get("destination_uris", [])))
                del running[obs_id]
            elif state in ("FAILED", "CANCELLED"):
                message = str(status.get("error_message", ""))
                busy = any(b in message.lower() for b in BUSY)
                if busy and attempt <= s.max_retries:
                    log.warning("%s: Earth Engine busy (%s); retry %d of %d", obs_id, message, attempt, s.max_retries)
                    task = make_task[obs_id]()
                    task.start()
                    running[obs_id] = (task, attempt + 1)
                else:
                    outcomes[obs_id] = Outcome(obs_id, state, attempt, error=message or state)
                    del running[obs_id]
        if waited > max_wait_s:
            for obs_id, (_, attempt) in running.items():
                outcomes[obs_id] = Outcome(obs_id, "FAILED", attempt, error=f"not finished after {waited:.0f} s")
            break
        delay = min(delay * 1.5, 600.0)
    return outcomes


def report(outcomes: dict[str, Outcome]) -> str:
    """One line per failed observation (empty when all completed)."""
    return "\n".join(
        f"{o.obs_id}: {o.state} after {o.attempts} attempt(s): {o.error}"
        for o in sorted(outcomes.values(), key=lambda o: o.obs_id)
        if o.state != "COMPLETED"
    )


def finalise(raw: Path, dst: Path, s: ExportSettings, tags: dict[str, str]) -> None:
    """Write the downloaded Earth Engine GeoTIFF(s) `raw` as the pipeline's COG: band names,
    scales and tags set, checked against the grid and band count expected."""
    import numpy as np
    import rasterio

    from sandmine.core.bands import CATALOGUE
    from sandmine.core.raster import write_cog

    bands = s.bands()
    with rasterio.open(raw) as src:
        if src.count != len(bands):
            raise SandmineError(
                f"export has {src.count} bands, expected {len(bands)} ({', '.join(bands)})",
                str(raw),
                "re-run the export (was gee.product changed in between?)",
            )
        data = src.read()
        grid = Grid(src.crs, src.transform, src.height, src.width)
    if (data == NODATA).all():
        raise SandmineError(
            "export is empty: no Sentinel-2 or Sentinel-1 pixel in the window",
            str(raw),
            "widen gee.window_days or pick another date (the observation selector helps)",
        )
    scales = [SCALES[CATALOGUE[b].unit] for b in bands]
    write_cog(
        dst,
        data.astype(np.int16),
        grid,
        bands,
        {"source": "gee", **tags},
        nodata=NODATA,
        scales=scales,
        resampling="average",
    )


def download(uris: list[str], folder: Path) -> Path:
    """Fetch a finished export from the bucket with gcsfs; tiles of a large export are mosaicked."""
    import gcsfs

    fs = gcsfs.GCSFileSystem()
    folder.mkdir(parents=True, exist_ok=True)
    local = []
    for uri in uris:
        path = uri.removeprefix("https://console.developers.google.com/storage/browser/").removeprefix("gs://")
        for remote in fs.glob(path if path.endswith(".tif") else f"{path.rstrip('/')}*.tif"):
            out = folder / Path(remote).name
            fs.get(remote, str(out))
            local.append(out)
    if not local:
        raise SandmineError(
            "the finished export has no file in the bucket", ", ".join(uris), "check the bucket's lifecycle rules"
        )
    if len(local) == 1:
        return local[0]
    import rasterio
    from rasterio.merge import merge

    srcs = [rasterio.open(p) for p in sorted(local)]
    try:
        mosaic, transform = merge(srcs, nodata=NODATA)
        profile = srcs[0].profile | {"height": mosaic.shape[1], "width": mosaic.shape[2], "transform": transform}
    finally:
        for src in srcs:
            src.close()
    out = folder / "mosaic.tif"
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(mosaic)
    return out


def cache_key(obs_id: str, bounds: tuple[float, float, float, float], date: str, s: ExportSettings) -> str:
    """Exports are cached by what determines their pixels, so adding a site exports only it."""
    import hashlib

    what = {"obs_id": obs_id, "bounds": [round(b, 7) for b in bounds], "date": date, "settings": s.__dict__}
    what["settings"] = {k: v for k, v in s.__dict__.items() if k in ("product", "window_days", "cs_threshold")}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def export(
    jobs: list[tuple[str, tuple[float, float, float, float], str, Grid]],
    s: ExportSettings,
    mode: str,
    cache_dir: Path,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Path]:
    """Export every (obs_id, site lon/lat bounds, date, grid) not already in `cache_dir`.

    Returns the cached COG of each observation. Observations that fail are reported together
    in one error after the others have finished and been cached, so a re-run exports only them.
    """
    import tempfile

    from tqdm import tqdm

    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {obs_id: cache_dir / f"{obs_id}-{cache_key(obs_id, b, d, s)}.tif" for obs_id, b, d, _ in jobs}
    todo = [j for j in jobs if not paths[j[0]].exists()]
    log.info("Earth Engine: %d of %d observations cached, %d to export", len(jobs) - len(todo), len(jobs), len(todo))
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        if mode == "direct":
            for obs_id, bounds, date, grid in tqdm(todo, desc="Earth Engine (direct)", unit="obs"):
                try:
                    raw = Path(tmp) / f"{obs_id}.raw.tif"
                    raw.write_bytes(compute_pixels(composite(list(bounds), date, s), grid))
                    finalise(raw, paths[obs_id], s, {"date": date, "obs_id": obs_id})
                except SandmineError as exc:
                    failures[obs_id] = str(exc)
        else:
            by_id = {j[0]: j for j in todo}

            def maker(job: tuple) -> Callable[[], Any]:
                obs_id, bounds, date, grid = job
                return lambda: export_task(composite(list(bounds), date, s), obs_id, grid, s)

            outcomes = run_tasks({obs_id: maker(j) for obs_id, j in by_id.items()}, s, sleep=sleep)
            for obs_id, outcome in sorted(outcomes.items()):
                if outcome.state != "COMPLETED":
                    failures[obs_id] = f"{outcome.state} after {outcome.attempts} attempt(s): {outcome.error}"
                    continue
                try:
                    raw = download(outcome.uris, Path(tmp) / obs_id)
                    finalise(raw, paths[obs_id], s, {"date": by_id[obs_id][2], "obs_id": obs_id})
                except SandmineError as exc:
                    failures[obs_id] = str(exc)
    if failures:
        lines = "\n".join(f"  {k}: {v}" for k, v in sorted(failures.items()))
        raise SandmineError(
            f"{len(failures)} of {len(todo)} Earth Engine exports failed (the others are cached):\n{lines}",
            str(cache_dir),
            "fix the cause and re-run: only the failed observations are exported again",
        )
    return paths


def rivers(asset: str, bounds: list[tuple[float, float, float, float]]) -> dict:
    """River lines of an Earth Engine FeatureCollection (e.g. WWF/HydroSHEDS/v1/FreeFlowingRivers)
    within the sites' boxes, as a GeoJSON FeatureCollection in EPSG:4326."""
    import ee

    boxes = ee.Geometry.MultiPolygon([ee.Geometry.Rectangle(list(b), "EPSG:4326", False).coordinates() for b in bounds])
    fc = ee.FeatureCollection(asset).filterBounds(boxes).map(lambda f: f.intersection(boxes, 1))
    out = dict(fc.getInfo())
    if not out.get("features"):
        raise SandmineError(
            f"no river of {asset} lies within the sites",
            "params.yaml: gee.rivers_asset",
            "check the asset id, or use source.rivers_file or aoi.rivers: water_index",
        )
    return out


class GeeSource(Source):
    """Earth Engine (source.kind: gee): median composites exported per observation or survey chunk."""

    kind = "gee"

    def covers(self) -> str:
        return "Earth Engine has Sentinel-2/1 images of the site within 'gee.window_days' of the date"

    def _settings(self, days: int) -> ExportSettings:
        g = self.p.gee
        s = ExportSettings(g.product, days, g.cs_threshold, g.bucket, g.prefix, g.max_retries, g.poll_s)
        missing = [b for b in self.p.bands if b not in s.bands()]
        if missing:
            raise SandmineError(f"Earth Engine {g.product} exports have no band(s) {missing}", "params.yaml: bands")
        return s

    def export_observations(
        self,
        sites: dict[str, Site],
        observations: list[Observation],
        images_dir: Path,
        source_dir: Path,
        previews_dir: Path | None,
    ) -> None:
        """Earth Engine images (cached per observation), rivers, and the manifest."""
        g = self.p.gee
        s = self._settings(g.window_days)
        for sid, site in sites.items():
            check_one_zone(sid, site.geometry.bounds)
        initialize(g.project)
        grids = {sid: grid_for_bounds(site.geometry.bounds) for sid, site in sites.items()}
        jobs = [
            (o.obs_id, sites[o.site_id].geometry.bounds, o.date.isoformat(), grids[o.site_id]) for o in observations
        ]
        cached = export(jobs, s, g.mode, Path(g.cache_dir).expanduser())
        for o in observations:
            with atomic_path(images_dir / f"{o.obs_id}.tif") as tmp:
                shutil.copyfile(cached[o.obs_id], tmp)
        write_manifest(observations, grids, images_dir, "gee")
        self.write_rivers(sites, source_dir)

    def rivers(self, sites: dict[str, Site]) -> dict:
        """The features of `gee.rivers_asset` near the sites, else `source.rivers_file`."""
        if self.p.gee.rivers_asset:
            return rivers(self.p.gee.rivers_asset, [site.geometry.bounds for site in sites.values()])
        return super().rivers(sites)

    def export_chunks(
        self,
        rivers: Sequence[SurveyRiver],
        chunks: Sequence[SurveyChunk],
        periods: Sequence[SurveyPeriod],
        halo_px: int,
        cache: Path,
        run: Runner,
    ) -> ChunkImages:
        """Earth Engine batch tasks (or computePixels) per (chunk, period), a median composite over the
        period, through the source's own cache and retries (`gee.cache_dir`, `gee.max_retries`)."""
        g = self.p.gee
        out: ChunkImages = {}
        initialize(g.project)
        own = Path(g.cache_dir).expanduser()
        for q in periods:
            s = self._settings(q.days)
            h = halo_px
            day = q.middle.isoformat()
            jobs = [(f"{c.chunk_id}_h{h}_{q.label}", c.bounds_4326(h), day, c.grid_with(h)) for c in chunks]
            done = export(jobs, s, g.mode, own)
            for c in chunks:
                out[(c.chunk_id, q.label)] = ChunkImage(done[f"{c.chunk_id}_h{h}_{q.label}"])
        return out
