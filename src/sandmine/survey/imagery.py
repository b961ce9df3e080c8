"""The image of every (chunk, period) through the source, exporting only what is not cached."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sandmine import scale
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.raster import has_valid_pixel
from sandmine.sources.registry import create
from sandmine.survey.chunks import Chunk
from sandmine.survey.periods import Period
from sandmine.survey.plan import Counts
from sandmine.survey.rivers import River

log = logging.getLogger(__name__)


def export_images(
    p: Params, rivers: list[River], chunks: list[Chunk], periods: list[Period], cache: Path, counts: Counts
) -> dict[tuple[str, str], tuple[Path, Path | None]]:
    """The image (and, from the synthetic world, the exact truth) of every (chunk, period) through the source
    (`sources.base.Source.export_chunks`), exporting only those not cached. Stops when a period has no imagery
    over any chunk."""

    def run(fn: Callable[..., object], args: list[tuple], desc: str) -> None:
        scale.run_many(fn, args, p.predict.workers, p.predict.scheduler, desc)

    done = create(p).export_chunks(rivers, chunks, periods, p.survey.halo_px, cache, run)
    out = {key: (c.image, c.truth) for key, c in done.items()}
    counts.exported += sum(not c.cached for c in done.values())
    counts.export_cached += sum(c.cached for c in done.values())
    for period in periods:
        if not any(has_valid_pixel(out[(c.chunk_id, period.label)][0]) for c in chunks):
            raise SandmineError(
                f"period {period.start}/{period.end} has no imagery over any of the {len(chunks)} chunks",
                "params.yaml: survey.periods",
                "check the period's dates against the source's archive (Sentinel-2 from 2017, Sentinel-1 from 2014), "
                "or drop the period",
            )
    log.info(
        "export: %d (chunk, period) exported now, %d from the cache %s", counts.exported, counts.export_cached, cache
    )
    return out
