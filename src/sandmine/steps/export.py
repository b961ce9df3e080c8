"""Stage export: sites and dates to the files of the source boundary."""

from __future__ import annotations

from pathlib import Path

from sandmine.config import Params
from sandmine.errors import SandmineError
from sandmine.files import fresh_dir
from sandmine.sites import read_observations, read_sites


def run(
    p: Params, sites_path: Path, obs_path: Path, images_dir: Path, source_dir: Path, previews_dir: Path | None = None
) -> None:
    sites = read_sites(sites_path)
    observations = read_observations(obs_path, sites)
    if p.source.kind != "synthetic":
        raise SandmineError(
            f"source '{p.source.kind}' is not available in this version", "params.yaml: source.kind", "use 'synthetic'"
        )
    from sandmine.sources.synthetic.world import export as synthetic_export

    fresh_dir(images_dir)
    fresh_dir(source_dir)
    if previews_dir is not None:
        fresh_dir(previews_dir)
    synthetic_export(sites, observations, p.bands, p.world, images_dir, source_dir, previews_dir)
