"""Windows: AOI-restricted random windows for training; the sliding-window grid for prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

Pixels = TypeVar("Pixels", np.ndarray, "torch.Tensor")


def sample_centres(aoi_masks: list[np.ndarray], n: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """`n` window centres (image index, row, col) drawn uniformly from AOI pixels of all images.

    Images with no AOI pixel are never drawn; if none has any, centres are drawn anywhere.
    """
    counts = np.array([int(m.sum()) for m in aoi_masks], dtype=np.int64)
    if counts.sum() == 0:
        aoi_masks = [np.ones_like(m, bool) for m in aoi_masks]
        counts = np.array([m.size for m in aoi_masks], dtype=np.int64)
    picks = rng.choice(counts.sum(), size=n, replace=True)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = [np.flatnonzero(m) for m in aoi_masks]
    out = []
    for p in np.sort(picks):
        i = int(np.searchsorted(offsets, p, side="right") - 1)
        r, c = np.unravel_index(flat[i][p - offsets[i]], aoi_masks[i].shape)
        out.append((i, int(r), int(c)))
    order = rng.permutation(len(out))
    return [out[k] for k in order]


def dihedral(a: Pixels, k: int, flip: bool) -> Pixels:
    """One of the 8 flips and right-angle rotations of (..., H, W) `a`: `k` quarter turns, then a left-right flip.

    The same for a numpy array (returned contiguous) and a torch tensor, so images, labels and
    encoded features of one window turn alike.
    """
    if isinstance(a, np.ndarray):
        v = np.rot90(a, k, axes=(-2, -1))
        return np.ascontiguousarray(v[..., ::-1] if flip else v)
    t = a.rot90(k, dims=(-2, -1))
    return t.flip(dims=(-1,)) if flip else t


def crop(arr: np.ndarray, row: int, col: int, size: int, fill: float) -> np.ndarray:
    """The `size`×`size` window centred at (row, col) of (..., H, W) `arr`, padded with `fill`."""
    h, w = arr.shape[-2:]
    r0, c0 = row - size // 2, col - size // 2
    out = np.full(arr.shape[:-2] + (size, size), fill, dtype=arr.dtype)
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + size, h), min(c0 + size, w)
    out[..., rs - r0 : re - r0, cs - c0 : ce - c0] = arr[..., rs:re, cs:ce]
    return out


def starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis that cover [0, length); the last is flush with the end."""
    if length <= window:
        return [0]
    out = list(range(0, length - window + 1, stride))
    if out[-1] != length - window:
        out.append(length - window)
    return out


def grid(h: int, w: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(row0, col0) of every prediction window over an (h, w) raster."""
    return [(r, c) for r in starts(h, window, stride) for c in starts(w, window, stride)]


def keep_region(r0: int, c0: int, window: int, h: int, w: int, discard: int) -> tuple[slice, slice]:
    """Part of a window whose predictions are kept: the edge is discarded except at raster edges."""
    top = 0 if r0 == 0 else discard
    left = 0 if c0 == 0 else discard
    bottom = window if r0 + window >= h else window - discard
    right = window if c0 + window >= w else window - discard
    return slice(top, bottom), slice(left, right)
