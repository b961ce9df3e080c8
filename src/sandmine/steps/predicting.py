"""Prediction of many observations with the params' stitching (evaluate and infer)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sandmine import calibration, prediction, scale
from sandmine.calibration import DEFAULT_THRESHOLD
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError

log = logging.getLogger(__name__)


def stitch(p: Params) -> prediction.Stitch:
    q = p.predict
    return prediction.Stitch(q.window_px, q.stride_px, q.discard_px, q.batch_size, q.blend, q.precision)


def predict_all(p: Params, model_path: Path, jobs: list[tuple[Path, Path]]) -> None:
    """Predict (image, output COG) pairs with the params' stitching, over Dask workers, on `predict.device`."""
    scale.predict_many(
        model_path,
        [scale.Job(src, dst) for src, dst in jobs],
        stitch(p),
        p.predict.workers,
        p.predict.scheduler,
        p.predict.tile_rows,
        p.predict.threads,
        p.predict.device,
    )


def threshold(p: Params, model_path: Path) -> float:
    """The threshold that maps are cut at: `predict.threshold` when set, else the checkpoint's
    operating threshold for `predict.operating_point` (chosen on the val split by the train stage)."""
    if p.predict.threshold is not None:
        return p.predict.threshold
    try:
        ckpt = torch.load(model_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise SandmineError("checkpoint not found", str(model_path), "run the train stage first") from exc
    value = calibration.stored_threshold(ckpt, p.predict.operating_point, str(model_path))
    if value is None:
        log.warning("%s has no operating threshold (older checkpoint): using %s", model_path, DEFAULT_THRESHOLD)
        return DEFAULT_THRESHOLD
    log.info("operating threshold %.3f (%s, chosen on the val split)", value, p.predict.operating_point)
    return value
