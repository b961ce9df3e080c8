"""Stage export: sites and dates to the files of the source boundary."""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from pathlib import Path

from shapely.geometry import box

from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.files import atomic_path, fresh_dir, write_text
from sandmine.core.raster import grid_for_bounds, has_valid_pixel, read_grid, to_crs
from sandmine.core.sites import Observation, Site, read_observations, read_sites

log = logging.getLogger(__name__)


def run(
    p: Params, sites_path: Path, obs_path: Path, images_dir: Path, source_dir: Path, previews_dir: Path | None = None
) -> None:
    sites = read_sites(sites_path)
    observations = read_observations(obs_path, sites)
    fresh_dir(images_dir)
    fresh_dir(source_dir)
    if previews_dir is not None:
        fresh_dir(previews_dir)
    if p.source.kind == "gee":
        _gee(p, sites, observations, images_dir, source_dir)
    elif p.source.kind == "local":
        _local(p, sites, observations, images_dir, source_dir)
    elif p.source.kind == "stac":
        _stac(p, sites, observations, images_dir, source_dir)
    else:
        from sandmine.sources.synthetic.world import export as synthetic_export

        synthetic_export(sites, observations, p.bands, p.world, images_dir, source_dir, previews_dir)
    _check_valid(p, sites, observations, images_dir, sites_path)


def _check_valid(p: Params, sites: dict[str, Site], observations: list[Observation], images: Path, at: Path) -> None:
    """Stop when an exported image has no valid pixel: the site is not where its images are (e.g. lat/lon
    swapped, or images of another place), which would otherwise pass as a clean negative."""
    empty = [o for o in sorted(observations, key=lambda o: o.obs_id) if not has_valid_pixel(images / f"{o.obs_id}.tif")]
    if not empty:
        return
    found = []
    for o in empty:
        w, s, e, n = sites[o.site_id].geometry.bounds
        text = f"'{o.obs_id}' (site '{o.site_id}' at lon {w:.4f}…{e:.4f}, lat {s:.4f}…{n:.4f}"
        user = Path(p.source.images_dir).expanduser() / f"{o.obs_id}.tif"
        if p.source.kind == "local" and user.is_file():
            g = read_grid(user)
            w, s, e, n = to_crs(box(*g.bounds), g.crs, "EPSG:4326").bounds
            text += f"; {user.name} covers lon {w:.4f}…{e:.4f}, lat {s:.4f}…{n:.4f}"
        found.append(text + ")")
    cover = {
        "local": f"the images in 'source.images_dir' ({p.source.images_dir}) cover the site",
        "gee": "Earth Engine has Sentinel-2/1 images of the site within 'gee.window_days' of the date",
        "stac": "the STAC catalogue has Sentinel-2/1 items of the site within 'stac.window_days' of the date",
    }.get(p.source.kind, "the site lies inside the world")
    raise SandmineError(
        f"exported image of observation {'; '.join(found)} has no valid pixel",
        str(at),
        f"check that the site's coordinates are [lon, lat] (GeoJSON order, not lat/lon) and that {cover}",
    )


def _gee(p: Params, sites: dict[str, Site], observations: list[Observation], images: Path, source: Path) -> None:
    """Earth Engine images (cached per observation), rivers, and the manifest."""
    from sandmine.sources import gee

    g = p.gee
    s = gee.ExportSettings(g.product, g.window_days, g.cs_threshold, g.bucket, g.prefix, g.max_retries, g.poll_s)
    missing = [b for b in p.bands if b not in s.bands()]
    if missing:
        raise SandmineError(f"Earth Engine {g.product} exports have no band(s) {missing}", "params.yaml: bands")
    for sid, site in sites.items():
        gee.check_one_zone(sid, site.geometry.bounds)
    gee.initialize(g.project)
    grids = {sid: grid_for_bounds(site.geometry.bounds) for sid, site in sites.items()}
    jobs = [(o.obs_id, sites[o.site_id].geometry.bounds, o.date.isoformat(), grids[o.site_id]) for o in observations]
    cached = gee.export(jobs, s, g.mode, Path(g.cache_dir).expanduser())
    for o in observations:
        with atomic_path(images / f"{o.obs_id}.tif") as tmp:
            shutil.copyfile(cached[o.obs_id], tmp)
    _manifest(observations, grids, images, "gee")
    if g.rivers_asset:
        rivers = gee.rivers(g.rivers_asset, [site.geometry.bounds for site in sites.values()])
        write_text(source / "rivers.geojson", json.dumps(rivers) + "\n")
    else:
        _write_rivers(p, source)


def _stac(p: Params, sites: dict[str, Site], observations: list[Observation], images: Path, source: Path) -> None:
    """STAC composites (cached per observation), rivers from source.rivers_file, and the manifest."""
    from sandmine.sources import gee, stac

    s = stac.settings(p.stac)
    stac.check_bands(p.bands)
    for sid, site in sites.items():
        gee.check_one_zone(sid, site.geometry.bounds)
    grids = {sid: grid_for_bounds(site.geometry.bounds) for sid, site in sites.items()}
    jobs = []
    for o in observations:
        start, end = stac.window(o.date, s.window_days)
        who = f"observation '{o.obs_id}' (site '{o.site_id}', {o.date.isoformat()})"
        tags = {"date": o.date.isoformat(), "obs_id": o.obs_id, "site_id": o.site_id}
        jobs.append(stac.Job(o.obs_id, who, sites[o.site_id].geometry.bounds, start, end, grids[o.site_id], tags))
    cached = stac.export(jobs, p.bands, s, Path(p.stac.cache_dir).expanduser())
    for o in observations:
        with atomic_path(images / f"{o.obs_id}.tif") as tmp:
            shutil.copyfile(cached[o.obs_id], tmp)
    _manifest(observations, grids, images, "stac")
    _write_rivers(p, source)


def _local(p: Params, sites: dict[str, Site], observations: list[Observation], images: Path, source: Path) -> None:
    """The user's GeoTIFFs or SAFE products, on each site's UTM grid at 10 m."""
    from tqdm import tqdm

    from sandmine.sources import gee, local

    if not p.source.images_dir:
        raise SandmineError("'source.images_dir' is empty", "params.yaml", "name the folder of your images")
    folder = Path(p.source.images_dir).expanduser()
    for sid, site in sites.items():
        gee.check_one_zone(sid, site.geometry.bounds)
    grids = {sid: grid_for_bounds(site.geometry.bounds) for sid, site in sites.items()}
    for o in tqdm(sorted(observations, key=lambda o: o.obs_id), desc="export (local)", unit="obs"):
        data, kind = local.import_observation(folder, o.obs_id, p.bands, grids[o.site_id])
        tags = {"source": f"local-{kind}", "date": o.date.isoformat(), "obs_id": o.obs_id}
        local.write_image(images / f"{o.obs_id}.tif", data, p.bands, grids[o.site_id], tags)
    _manifest(observations, grids, images, "local")
    _write_rivers(p, source)


def _manifest(observations: list[Observation], grids: dict, images: Path, source: str) -> None:
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


def _write_rivers(p: Params, source: Path) -> None:
    if p.source.rivers_file:
        rivers = _rivers_file(Path(p.source.rivers_file), p.source.rivers_layer)
    else:
        rivers = {"type": "FeatureCollection", "features": []}  # aoi.rivers: water_index needs none
    write_text(source / "rivers.geojson", json.dumps(rivers) + "\n")


def _rivers_file(path: Path, layer: str) -> dict:
    """A user's vector file of rivers (any CRS; `layer` of a GeoPackage) as GeoJSON in EPSG:4326."""
    from sandmine.core.vectors import extent, read_vectors

    frame = read_vectors(path, "rivers", "source.rivers_file", layer, "source.rivers_layer")
    km, km2 = (sum(v) for v in zip(*(extent(g) for g in frame.geometry), strict=True)) if len(frame) else (0, 0)
    log.info("rivers: %d feature(s) of %s: %.1f km of line, %.1f km² of polygons", len(frame), path, km, km2)
    return json.loads(frame.to_json())
