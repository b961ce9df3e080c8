"""Stage survey: every river of `survey.rivers` within `aoi.buffer_m`, for each of `survey.periods`.

1. plan: the buffer cut into chunks (UTM squares with stable ids, `survey.plan`);
2. export each (chunk, period) not yet cached through the source (`survey.imagery`, `sources.base.Source`);
3. predict each (chunk, period) not yet cached for this model and stitching, over Dask (`survey.probability`);
4. per chunk: probability and mask inside the buffer, polygons, change between periods (`survey.masks`);
5. polygons merged across chunk seams (`survey.seams`); a mosaic per period and zone (`survey.mosaic`);
   `survey.gpkg` (layers mines, change, chunks and the table area); a Leaflet map page (`survey.map_page`).

Caches are keyed by everything that decides their pixels, so adding a period or a river exports and
predicts only the new chunks, and the outputs (rebuilt from the caches every run) are the same.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sandmine import alerts
from sandmine.calibration import threshold_for
from sandmine.core.config import Params
from sandmine.core.files import check_outputs, claim_dir, fresh_dir, output_lock, round_metrics, write_json
from sandmine.survey import gpkg, imagery, map_page, masks, mosaic, probability, seams, summary
from sandmine.survey.plan import Counts, plan

log = logging.getLogger(__name__)


def run(
    p: Params,
    model_path: Path,
    out_dir: Path,
    report_path: Path,
    metrics_path: Path,
    params_path: Path | None = None,
) -> Counts:
    """Survey every river; before any work, refuse outputs that would destroy an input or a user's folder.

    `out_dir` must be new, empty, or a folder of an earlier survey (it is emptied); `params_path`, when
    given, is one more input that no output may overwrite.
    """
    inputs = {
        "--model": model_path,
        "--params": params_path,
        "survey.rivers": Path(p.survey.rivers),
        "survey.region": Path(p.survey.region) if p.survey.region else None,
        "survey.zones": Path(p.survey.zones) if p.survey.zones else None,
        "survey.cache_dir": Path(p.survey.cache_dir).expanduser(),
    }
    check_outputs(inputs, {"--report": report_path, "--metrics": metrics_path}, {"--out": out_dir})
    claim_dir(out_dir, "--out")
    with output_lock(out_dir, report_path, metrics_path):
        return _run(p, model_path, out_dir, report_path, metrics_path)


def _run(p: Params, model_path: Path, out_dir: Path, report_path: Path, metrics_path: Path) -> Counts:
    t0 = time.perf_counter()
    job = plan(p)
    periods, chunks = job.periods, job.chunks
    cache = Path(p.survey.cache_dir).expanduser()
    counts = Counts(chunks=len(chunks), buffer_km2=job.buffer_km2, periods=[q.label for q in periods])
    counts.seconds["plan"] = time.perf_counter() - t0
    images = imagery.export_images(p, job.rivers, chunks, periods, cache, counts)
    counts.seconds["export"] = time.perf_counter() - t0 - sum(counts.seconds.values())
    preds = probability.predict_chunks(p, model_path, images, cache, counts)
    counts.seconds["predict"] = time.perf_counter() - t0 - sum(counts.seconds.values())
    thr = threshold_for(p.predict.threshold, p.predict.operating_point, model_path)
    fresh_dir(out_dir, "--out")
    synthetic = p.source.kind == "synthetic"
    tags = {
        "source": p.source.kind,
        **({"note": "SYNTHETIC: the embedded world, not real imagery"} if synthetic else {}),
    }
    m = masks.chunk_maps(chunks, periods, images, preds, thr, p.survey.halo_px, p.infer.min_area_ha, out_dir, tags)
    mines = [x for x in seams.merge_seams(m.mine_pieces, job.by_id) if x.area_ha >= p.infer.min_area_ha]
    changes = [x for x in seams.merge_seams(m.change_pieces, job.by_id) if x.area_ha >= p.infer.min_area_ha]
    log.info(
        "polygons: %d mines (%d across chunk seams), %d change",
        len(mines),
        sum(len(x.chunks) > 1 for x in mines),
        len(changes),
    )
    mosaics = mosaic.mosaics(m.files, out_dir / "mosaic", tags)
    frames = gpkg.frames(mines, changes, chunks, job.by_id, periods, m.pixel_ha, m.truth_ha if synthetic else None)
    # alerts: new / expanded mines in or near survey.zones (layer `alerts`, alerts.csv, the map, metrics); "" = none
    found = alerts.for_survey(p.survey, frames["mines"], [q.label for q in periods], out_dir / "alerts.csv")
    if found is not None:
        frames["alerts"] = found.alerts
    gpkg.write_gpkg(out_dir / "survey.gpkg", frames)
    map_page.map_page(
        p.survey.halo_px, chunks, periods, images, preds, frames, synthetic, report_path, found.map if found else None
    )
    seconds = time.perf_counter() - t0
    counts.seconds["outputs"] = seconds - sum(counts.seconds.values())
    metrics = summary.metrics(job, thr, mines, changes, frames["area"], synthetic)
    metrics.update(found.metrics if found else {})
    write_json(metrics_path, round_metrics(metrics, 3))
    print(summary.summary(frames["area"], job.buffer_km2, counts, mosaics, out_dir, seconds))
    return counts
