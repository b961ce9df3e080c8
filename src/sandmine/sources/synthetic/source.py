"""The embedded world as a source (source.kind: synthetic): its sites' images and its long rivers' chunks."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from sandmine.core.errors import SandmineError
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
    cache_key,
)

SYNTHETIC_RECIPE = "sandmine-synthetic-river-v1"


class SyntheticSource(Source):
    """Renders what the real sources deliver, with the exact truth beside it."""

    kind = "synthetic"
    synthetic = True

    def covers(self) -> str:
        return "the site lies inside the world"

    def export_observations(
        self,
        sites: dict[str, Site],
        observations: list[Observation],
        images_dir: Path,
        source_dir: Path,
        previews_dir: Path | None,
    ) -> None:
        from sandmine.sources.synthetic.world import export

        export(sites, observations, self.p.bands, self.p.world, images_dir, source_dir, previews_dir)

    def rivers(self, sites: dict[str, Site]) -> dict:
        """The active channel of every site (what `export_observations` writes to rivers.geojson)."""
        from sandmine.sources.synthetic.scene import Terrain
        from sandmine.sources.synthetic.world import _rivers

        grids = {sid: grid_for_bounds(s.geometry.bounds) for sid, s in sites.items()}
        w = self.p.world
        channels = {sid: Terrain(sid, g.height, g.width, w.seed, w.mine_density).channel for sid, g in grids.items()}
        return _rivers(channels, grids)

    def export_chunks(
        self,
        rivers: Sequence[SurveyRiver],
        chunks: Sequence[SurveyChunk],
        periods: Sequence[SurveyPeriod],
        halo_px: int,
        cache: Path,
        run: Runner,
    ) -> ChunkImages:
        """Each chunk's main river (the largest share of its buffer) rendered on the chunk's grid on each
        period's middle day, with the exact truth; only the world's own rivers can be rendered."""
        from sandmine.sources.synthetic import river as world_river

        p = self.p
        worlds: dict[str, world_river.LongRiver] = {}
        for r in rivers:
            if r.properties.get("synthetic") != SYNTHETIC_RECIPE:
                raise SandmineError(
                    f"river '{r.name}' is not one of the synthetic world's rivers (no 'synthetic: {SYNTHETIC_RECIPE}')",
                    p.survey.rivers,
                    "the embedded world renders only its own rivers: write them with "
                    "`python -m sandmine.sources.synthetic.catalogue data/surveys --size river`, "
                    "or survey real imagery with source.kind gee or local",
                )
            worlds[r.name] = world_river.LongRiver.from_properties(r.properties)
        todo: list[tuple] = []
        out: ChunkImages = {}
        for c in chunks:
            name = max(c.rivers, key=lambda n: (c.river_aois[n].area, n))  # the chunk's main river draws it
            recipe = {"world": dataclasses.asdict(p.world), "bands": p.bands, "river": worlds[name].properties()}
            key = cache_key({**recipe, "halo_px": halo_px})
            for q in periods:
                img = cache / "images" / key / q.label / f"{c.chunk_id}.tif"
                truth = cache / "truth" / key / q.label / f"{c.chunk_id}.tif"
                cached = img.exists() and truth.exists()
                out[(c.chunk_id, q.label)] = ChunkImage(img, truth, cached)
                if not cached:
                    tags = {"chunk_id": c.chunk_id, "period": q.label, "halo_px": str(halo_px)}
                    todo.append((worlds[name], c.grid_with(halo_px), q.middle, img, truth, tags))
        run(_render_one, [(*t, p.bands, p.world) for t in todo], "export (synthetic)")
        return out


def _render_one(
    river: object, grid: Grid, date: dt.date, img: Path, truth: Path, tags: dict, bands: list[str], world: object
) -> None:
    from sandmine.sources.synthetic import river as world_river

    world_river.export_window(river, grid, date, bands, world, img, truth, tags)  # type: ignore[arg-type]
