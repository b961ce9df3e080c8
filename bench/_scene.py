"""A large scene for benchmarks: an exported image tiled (mirrored) to the size asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window


def big_scene(src: Path, dst: Path, height: int, width: int) -> Path:
    """Write `dst`: `src`'s pixels mirrored and repeated to height × width, same bands and scales,
    written in blocks of rows so that making a 10,000 × 10,000 scene needs little memory."""
    with rasterio.open(src) as s:
        raw = s.read()
        profile = s.profile
        descriptions, scales, tags = s.descriptions, s.scales, s.tags()
    tile = np.concatenate([raw, raw[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[:, :, ::-1]], axis=2)
    th, tw = tile.shape[1:]
    reps_w = -(-width // tw)
    row_block = np.tile(tile, (1, 1, reps_w))[:, :, :width]
    profile.update(driver="GTiff", height=height, width=width, tiled=True, blockxsize=256, blockysize=256,
                   compress="DEFLATE", BIGTIFF="IF_SAFER")  # fmt: skip
    with rasterio.open(dst, "w", **profile) as d:
        for r in range(0, height, th):
            n = min(th, height - r)
            d.write(row_block[:, :n], window=Window(0, r, width, n))
        for i, name in enumerate(descriptions):
            d.set_band_description(i + 1, name)
        d.scales = scales
        d.update_tags(**{**tags, "bench": "tiled copy of " + src.name})
    return dst
