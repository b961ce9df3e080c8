"""Stage export: sites and dates to the files of the source boundary."""

from __future__ import annotations

import logging
from pathlib import Path

from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.files import fresh_dir
from sandmine.core.raster import has_valid_pixel
from sandmine.core.sites import Observation, Site, read_observations, read_sites
from sandmine.sources.base import Source
from sandmine.sources.registry import create

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
    source = create(p)
    source.export_observations(sites, observations, images_dir, source_dir, previews_dir)
    _check_valid(source, sites, observations, images_dir, sites_path)


def _check_valid(
    source: Source, sites: dict[str, Site], observations: list[Observation], images: Path, at: Path
) -> None:
    """Stop when an exported image has no valid pixel: the site is not where its images are (e.g. lat/lon
    swapped, or images of another place), which would otherwise pass as a clean negative."""
    empty = [o for o in sorted(observations, key=lambda o: o.obs_id) if not has_valid_pixel(images / f"{o.obs_id}.tif")]
    if not empty:
        return
    found = []
    for o in empty:
        w, s, e, n = sites[o.site_id].geometry.bounds
        text = f"'{o.obs_id}' (site '{o.site_id}' at lon {w:.4f}…{e:.4f}, lat {s:.4f}…{n:.4f}"
        extent = source.image_extent(o.obs_id)
        found.append(text + (f"; {extent}" if extent else "") + ")")
    cover = source.covers()
    raise SandmineError(
        f"exported image of observation {'; '.join(found)} has no valid pixel",
        str(at),
        f"check that the site's coordinates are [lon, lat] (GeoJSON order, not lat/lon) and that {cover}",
    )
