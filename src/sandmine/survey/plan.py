"""The survey's plan: its periods, rivers and chunks from the params, and the counts of what a run did."""

from __future__ import annotations

import dataclasses
import logging

from sandmine.core.config import Params
from sandmine.core.windows import starts
from sandmine.survey.chunks import RES_M, Chunk, plan_chunks
from sandmine.survey.periods import Period, parse_periods
from sandmine.survey.rivers import River, read_rivers

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Counts:
    """What a run did: chunks, and (chunk, period) pairs exported / predicted now or found cached."""

    chunks: int = 0
    buffer_km2: float = 0.0
    exported: int = 0
    export_cached: int = 0
    predicted: int = 0
    predict_cached: int = 0
    periods: list[str] = dataclasses.field(default_factory=list)
    predicted_pairs: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # per phase: plan, export, predict, outputs


@dataclasses.dataclass
class Plan:
    """What a survey covers: periods in order, rivers by name, chunks (and by id), km² of buffer."""

    periods: list[Period]
    rivers: list[River]
    chunks: list[Chunk]
    by_id: dict[str, Chunk]
    buffer_km2: float


def plan(p: Params) -> Plan:
    """The periods, rivers and chunks of `survey` (warns when a chunk needs more than one window)."""
    where = "params.yaml: survey"
    periods = parse_periods(p.survey.periods, f"{where}.periods")
    rivers = read_rivers(p.survey.rivers, p.survey.river_field, p.survey.region or None, p.survey.rivers_layer)
    chunks = plan_chunks(rivers, p.aoi.buffer_m, p.survey.chunk_km)
    by_id = {c.chunk_id: c for c in chunks}
    buffer_km2 = sum(c.aoi.area for c in chunks) / 1e6
    log.info(
        "survey: %d river(s), %d chunks of %g km in %d zone(s), %.1f km² of buffer, %d period(s)",
        len(rivers),
        len(chunks),
        p.survey.chunk_km,
        len({c.zone for c in chunks}),
        buffer_km2,
        len(periods),
    )
    side = int(round(p.survey.chunk_km * 1000 / RES_M)) + 2 * p.survey.halo_px
    if side > p.predict.window_px:
        n = len(starts(side, p.predict.window_px, p.predict.stride_px)) ** 2
        log.warning(
            "a chunk with its halo is %d px, more than one %d px window: %d windows each; survey.chunk_km = "
            "(predict.window_px - 2 * survey.halo_px) / 100 predicts each chunk in one window",
            side,
            p.predict.window_px,
            n,
        )
    return Plan(periods, rivers, chunks, by_id, buffer_km2)
