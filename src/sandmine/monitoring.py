"""Monitoring across dates of one site: cleaned masks, change classes and the temporal median.

All rasters of a site must lie on one grid (exports use one grid per site).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

NONE, NEW, EXPANDED, ABANDONED = 0, 1, 2, 3
CHANGE_NAMES = {NEW: "new", EXPANDED: "expanded", ABANDONED: "abandoned"}
_EIGHT = np.ones((3, 3), bool)


def clean(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """`mask` without 8-connected objects smaller than `min_pixels`."""
    lab, n = ndimage.label(mask, _EIGHT)
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[lab]


def change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """uint8 change classes from two bool masks of mining.

    - NEW: pixels of a mine (8-connected object of `after`) that touches no mining of `before`;
    - EXPANDED: pixels mined in `after` only, in a mine that was already there in `before`;
    - ABANDONED: pixels mined in `before` and no longer in `after`.
    """
    out = np.zeros(after.shape, np.uint8)
    lab, n = ndimage.label(after, _EIGHT)
    if n:
        touches = np.zeros(n + 1, bool)
        touches[np.unique(lab[after & before])] = True
        touches[0] = False
        grown = after & ~before
        out[grown & touches[lab]] = EXPANDED
        out[after & ~touches[lab]] = NEW
    out[before & ~after] = ABANDONED
    return out


def temporal_median(stack: list[np.ndarray]) -> np.ndarray:
    """Per-pixel median of uint8 probability rasters (dates), as uint8.

    Prior work found a median over dates beats any single date: clouds, haze and wet sand
    fool one date, rarely most of them.
    """
    arr = np.stack(stack)
    return np.rint(np.median(arr, axis=0)).astype(np.uint8)
