"""How every source stores images: int16 with per-unit scale factors, like an Earth Engine export."""

from __future__ import annotations

import numpy as np

from sandmine.core.bands import CATALOGUE

SCALES = {"reflectance": 1e-4, "dB": 1e-2, "score": 1e-4}  # physical value = stored × scale
NODATA = -32768


def store(data: np.ndarray, bands: list[str]) -> tuple[np.ndarray, list[float]]:
    """(C, H, W) physical values -> int16 stored values (NaN -> NODATA) and the band scales."""
    scales = [SCALES[CATALOGUE[b].unit] for b in bands]
    stored = np.stack([np.round(d / sc) for d, sc in zip(data, scales)]).clip(-32767, 32767)
    return np.where(np.isfinite(stored), stored, NODATA).astype(np.int16), scales
