"""Stitched sliding-window prediction with an edge discard and mean blending of overlaps."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sandmine.bands import to_model_units
from sandmine.windows import grid, keep_region


def normalise(image: np.ndarray, bands: list[str], mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(C, H, W) export units -> standardised float32 with NaN (nodata) as 0."""
    x = to_model_units(image, bands)
    x = (x - mean[:, None, None]) / std[:, None, None]
    return np.nan_to_num(x, nan=0.0).astype(np.float32)


@torch.no_grad()
def predict(model: nn.Module, image: np.ndarray, window: int, stride: int, discard: int, batch_size: int) -> np.ndarray:
    """Probability of mining for every pixel.

    Args:
        model: (B, C, window, window) -> (B, 1, window, window) logits.
        image: (C, H, W) float32, already normalised.
        window, stride, discard: window size, step between windows, and pixels dropped at
            each window edge (kept where the window touches the raster edge).
        batch_size: windows per forward pass.

    Returns:
        (H, W) float32 probabilities; overlapping kept regions are averaged.
    """
    c, h, w = image.shape
    ph, pw = max(0, window - h), max(0, window - w)
    if ph or pw:  # smaller than one window: pad, predict, crop
        padded = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")
        return predict(model, padded, window, stride, discard, batch_size)[:h, :w]
    total = np.zeros((h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    starts = grid(h, w, window, stride)
    model.eval()
    for b in range(0, len(starts), batch_size):
        batch = starts[b : b + batch_size]
        x = torch.from_numpy(np.stack([image[:, r : r + window, q : q + window] for r, q in batch]))
        prob = torch.sigmoid(model(x))[:, 0].numpy()
        for (r, q), p in zip(batch, prob):
            rs, cs = keep_region(r, q, window, h, w, discard)
            total[r + rs.start : r + rs.stop, q + cs.start : q + cs.stop] += p[rs, cs]
            count[r + rs.start : r + rs.stop, q + cs.start : q + cs.stop] += 1
    return total / np.maximum(count, 1)
