"""Peak memory of `sandmine predict --mask --polygons` after prediction, on a large probability raster.

    python bench/strips.py --size 30000                    # the streaming path (sandmine.strips)
    python bench/strips.py --size 30000 --height 4000      # its memory does not depend on the height
    python bench/strips.py --size 30000 --height 4000 --whole  # the whole-array path it replaced

The probability raster is a VRT of one 2,000 px uint8 tile with a few mines (some crossing tile and
strip edges) repeated over size x size px (or size x height); each run is a child process whose peak RSS is read
from the kernel (ru_maxrss), so the numbers include numpy, rasterio and GDAL's block cache.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import from_origin

from sandmine.core.raster import Grid, write_cog

TILE = 2000


def make_vrt(folder: Path, size: int, height: int) -> Path:
    """A size px wide, height px tall probability VRT tiled with one 2,000 px COG of mines."""
    rng = np.random.default_rng(0)
    q = np.zeros((TILE, TILE), np.uint8)
    for _ in range(12):
        r, c = rng.integers(0, TILE - 300, 2)
        h, w = rng.integers(20, 300), rng.integers(20, 80)
        q[r : r + h, c : c + w] = rng.integers(160, 255)
    q[:, 1000:1030] = 200  # a mine from the tile's top to its bottom: one polygon the whole height of the VRT
    tile = folder / "tile.tif"
    write_cog(tile, q, Grid(CRS.from_epsg(32644), from_origin(0, 0, 10, 10), TILE, TILE), ["mine_probability"])
    n, m = -(-height // TILE), -(-size // TILE)
    sources = "".join(
        f"<SimpleSource><SourceFilename relativeToVRT='1'>tile.tif</SourceFilename><SourceBand>1</SourceBand>"
        f"<SrcRect xOff='0' yOff='0' xSize='{TILE}' ySize='{TILE}'/>"
        f"<DstRect xOff='{j * TILE}' yOff='{i * TILE}' xSize='{TILE}' ySize='{TILE}'/></SimpleSource>"
        for i in range(n)
        for j in range(m)
    )
    crs = CRS.from_epsg(32644).to_wkt()
    vrt = folder / f"prob_{size}x{height}.vrt"
    vrt.write_text(
        f"<VRTDataset rasterXSize='{size}' rasterYSize='{height}'><SRS>{crs}</SRS>"
        f"<GeoTransform>500000, 10, 0, 2800000, 0, -10</GeoTransform>"
        f"<VRTRasterBand dataType='Byte' band='1'><Description>mine_probability</Description>{sources}"
        f"</VRTRasterBand></VRTDataset>"
    )
    return vrt


def child(vrt: str, mask: str, whole: bool) -> None:
    """One measured run: the mask (as a COG) and the polygons, streaming or whole-array."""
    start = time.perf_counter()
    if whole:
        from sandmine import monitoring
        from sandmine.core.metrics import level
        from sandmine.core.raster import read_grid, read_mask
        from sandmine.vectorize import polygons

        grid = read_grid(vrt)
        q = read_mask(vrt, grid)
        m = monitoring.clean(q >= level(0.5), 10)
        write_cog(mask, m.astype(np.uint8), grid, ["mine"])
        feats = polygons(np.where(m, q / 255.0, 0.0), grid, 0.5, 0.1, {})
    else:
        from sandmine import strips

        feats = strips.mask_and_polygons(vrt, 0.5, 10, 0.1, {}, mask)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"polygons": len(feats), "seconds": round(time.perf_counter() - start, 1), "peak_gib": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=30_000)
    ap.add_argument("--height", type=int, help="rows (default: --size)")
    ap.add_argument("--whole", action="store_true", help="the whole-array path (needs ~12 bytes per pixel)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child, a.whole)
        return
    with tempfile.TemporaryDirectory(dir=".", prefix="tmp-bench-strips-") as d:
        height = a.height or a.size
        vrt = make_vrt(Path(d), a.size, height)
        cmd = [sys.executable, __file__, "--child", str(vrt), str(Path(d) / "mask.tif")] + (["--whole"] * a.whole)
        result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    path = "whole-array" if a.whole else "strips"
    print(
        f"{path}: {a.size:,} x {height:,} px, {result['polygons']:,} polygons, {result['seconds']} s, "
        f"peak RSS {result['peak_gib']:.2f} GiB"
    )


if __name__ == "__main__":
    main()
