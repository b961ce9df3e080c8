"""Prediction of many observations with the params' stitching (evaluate and infer)."""

from __future__ import annotations

from pathlib import Path

from sandmine import prediction, scale
from sandmine.config import Params


def stitch(p: Params) -> prediction.Stitch:
    q = p.predict
    return prediction.Stitch(q.window_px, q.stride_px, q.discard_px, q.batch_size, q.blend)


def predict_all(p: Params, model_path: Path, jobs: list[tuple[Path, Path]]) -> None:
    """Predict (image, output COG) pairs with the params' stitching, over Dask workers."""
    scale.predict_many(
        model_path,
        [scale.Job(src, dst) for src, dst in jobs],
        stitch(p),
        p.predict.workers,
        p.predict.scheduler,
        p.predict.tile_rows,
        p.predict.threads,
    )
