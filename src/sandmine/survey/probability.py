"""Probability COGs of every (chunk, period), predicted over Dask, cached per model, stitching and image."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

from sandmine import scale
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.sources.base import cache_key
from sandmine.survey.plan import Counts

log = logging.getLogger(__name__)


def predict_chunks(
    p: Params, model_path: Path, images: dict[tuple[str, str], tuple[Path, Path | None]], cache: Path, counts: Counts
) -> dict[tuple[str, str], Path]:
    """Probability COGs of every (chunk, period), predicting on Dask only those not cached for this
    model, stitching and image."""
    if not model_path.exists():
        raise SandmineError("checkpoint not found", str(model_path), "run the train stage first")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    q = p.predict
    recipe = {"model": digest, "stitch": dataclasses.asdict(scale.stitch(p.predict))}
    out, jobs = {}, []
    for pair, (img, _) in sorted(images.items()):
        st = img.stat()
        key = cache_key({**recipe, "image": str(img.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns})
        dst = cache / "predictions" / key[:2] / f"{key}.tif"
        out[pair] = dst
        if dst.exists():
            counts.predict_cached += 1
        else:
            jobs.append(scale.Job(img, dst, (("chunk_id", pair[0]), ("period", pair[1]))))
            counts.predicted_pairs.append(pair)
    counts.predicted = len(jobs)
    log.info("predict: %d (chunk, period) to predict, %d from the cache", len(jobs), counts.predict_cached)
    if jobs:
        stitch = scale.stitch(q)
        scale.predict_many(model_path, jobs, stitch, q.workers, q.scheduler, q.tile_rows, q.threads, q.device)
    return out
