"""Calibration: the operating threshold chosen on validation pixels, and how well probabilities are calibrated.

A model trained with a weighted loss ranks pixels well (AP) but its probabilities are not
frequencies: at 0.5 it over-predicts mined area. The train stage predicts the validation
observations exactly as evaluate predicts the test ones, counts them in a `Histogram` and picks
the threshold that a map user gets (`operating_threshold`), stored in the checkpoint; evaluate,
infer and `sandmine predict` apply it. AP is untouched: only the cut moves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sandmine.core.errors import SandmineError
from sandmine.core.metrics import LEVELS, Histogram

METHODS = ("best_f1", "area")
log = logging.getLogger(__name__)
DEFAULT_THRESHOLD = 0.5  # for checkpoints written before operating thresholds were stored


def operating_threshold(hist: Histogram, method: str) -> float:
    """The threshold (a multiple of 1/255) that `score >= threshold` is cut at.

    Args:
        hist: validation pixels (AOI, ignore excluded) by stored probability level.
        method: `best_f1` (highest pixel F1) or `area` (predicted pixels closest to labelled pixels,
            so the mined area a map reports matches what annotators drew).

    Raises:
        ValueError: no positive pixel to calibrate on, or an unknown method.
    """
    if hist.pos.sum() == 0:
        raise ValueError("no mine pixel in the validation observations: nothing to choose a threshold on")
    if method == "best_f1":
        return hist.best_f1()[1]
    if method == "area":
        predicted = np.cumsum((hist.pos + hist.neg)[::-1])[::-1]  # pixels with level >= k
        k = int(np.argmin(np.abs(predicted - hist.pos.sum())))
        return max(k, 1) / (LEVELS - 1)  # level 0 would call every pixel mine
    raise ValueError(f"unknown operating point {method!r}; valid: {', '.join(METHODS)}")


def reliability(hist: Histogram, bins: int = 10) -> list[dict[str, float]]:
    """Reliability curve: per equal-width probability bin, mean predicted probability and mine fraction.

    Returns one row per non-empty bin: `bin_lo`, `bin_hi`, `predicted` (mean probability of its pixels),
    `observed` (fraction of them that are mine) and `pixels`.
    """
    prob = np.arange(LEVELS) / (LEVELS - 1)
    edge = np.minimum((prob * bins).astype(int), bins - 1)  # bin of each level; 1.0 in the last bin
    rows = []
    for b in range(bins):
        sel = edge == b
        pos, neg = hist.pos[sel], hist.neg[sel]
        n = int(pos.sum() + neg.sum())
        if n == 0:
            continue
        rows.append(
            {
                "bin_lo": b / bins,
                "bin_hi": (b + 1) / bins,
                "predicted": float(((pos + neg) * prob[sel]).sum() / n),
                "observed": float(pos.sum() / n),
                "pixels": n,
            }
        )
    return rows


def expected_calibration_error(hist: Histogram, bins: int = 10) -> float:
    """ECE = Σ_b (n_b / N) |observed_b − predicted_b| over equal-width bins (Guo et al. 2017)."""
    rows = reliability(hist, bins)
    total = sum(r["pixels"] for r in rows)
    if total == 0:
        return float("nan")
    return float(sum(r["pixels"] / total * abs(r["observed"] - r["predicted"]) for r in rows))


def stored_threshold(ckpt: dict[str, Any], method: str, where: str) -> float | None:
    """The checkpoint's operating threshold for `method`, or None for checkpoints that carry none.

    Raises:
        SandmineError: the checkpoint lacks `method` or holds a value outside (0, 1).
    """
    thresholds = ckpt.get("thresholds")
    if thresholds is None:
        return None
    if method not in thresholds:
        raise SandmineError(
            f"checkpoint has no operating threshold for '{method}' (it has {sorted(thresholds)})",
            where,
            f"use one of {sorted(thresholds)} for predict.operating_point, or re-run the train stage",
        )
    value = float(thresholds[method])
    if not 0 < value < 1:
        raise SandmineError(f"stored threshold for '{method}' is {value}, not in (0, 1)", where, "re-train")
    return value


def decide_threshold(
    given: float | None, method: str, ckpt: Callable[[], dict[str, Any]], where: str
) -> tuple[float, str]:
    """The threshold maps are cut at, and where it comes from: `given` ("given") when set, else the
    checkpoint's operating threshold for `method`, chosen on the val split by the train stage ("stored"),
    else (checkpoints older than stored thresholds) DEFAULT_THRESHOLD ("default"). `ckpt` loads the
    checkpoint, only when it is needed."""
    if given is not None:
        return float(given), "given"
    stored = stored_threshold(ckpt(), method, where)
    if stored is None:
        return DEFAULT_THRESHOLD, "default"
    return stored, "stored"


def threshold_for(given: float | None, method: str, model_path: Path) -> float:
    """`decide_threshold` for a stage: `predict.threshold`, `predict.operating_point` and the checkpoint at
    `model_path`, logged."""
    import torch

    def load() -> dict[str, Any]:
        try:
            return torch.load(model_path, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise SandmineError("checkpoint not found", str(model_path), "run the train stage first") from exc

    value, origin = decide_threshold(given, method, load, str(model_path))
    if origin == "default":
        log.warning("%s has no operating threshold (older checkpoint): using %s", model_path, DEFAULT_THRESHOLD)
    elif origin == "stored":
        log.info("operating threshold %.3f (%s, chosen on the val split)", value, method)
    return value
