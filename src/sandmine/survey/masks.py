"""Per chunk and period: probability and mask inside the buffer (chunk COGs), polygon pieces, area per river."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sandmine import monitoring
from sandmine.core.metrics import level
from sandmine.core.raster import Grid, write_cog
from sandmine.survey.chunks import Chunk, Zone, read_inner
from sandmine.survey.periods import Period
from sandmine.survey.seams import Piece, clean_inner, pieces


@dataclasses.dataclass
class ChunkMaps:
    """What the chunks give the survey's outputs: polygon pieces (mines, change), hectares per (river, period)
    predicted and true (the synthetic world), and the chunk COGs per (period, zone, kind) for the mosaics."""

    mine_pieces: list[Piece]
    change_pieces: list[Piece]
    pixel_ha: dict[tuple[str, str], float]
    truth_ha: dict[tuple[str, str], float]
    files: dict[tuple[str, Zone, str], list[tuple[Path, Grid]]]


def chunk_maps(
    chunks: list[Chunk],
    periods: list[Period],
    images: dict[tuple[str, str], tuple[Path, Path | None]],
    preds: dict[tuple[str, str], Path],
    thr: float,
    halo: int,
    min_area_ha: float,
    out_dir: Path,
    tags: dict[str, str],
) -> ChunkMaps:
    """Cut each (chunk, period) prediction at `thr` inside the buffer, write its COGs in `out_dir/chunks/`,
    and collect its pieces and areas; change between consecutive periods."""
    mine_pieces: list[Piece] = []
    change_pieces: list[Piece] = []
    pixel_ha: dict[tuple[str, str], float] = defaultdict(float)  # (river, period) → predicted ha (pixels)
    truth_ha: dict[tuple[str, str], float] = defaultdict(float)
    files: dict[tuple[str, Zone, str], list[tuple[Path, Grid]]] = defaultdict(list)  # (period, zone, kind)
    for chunk in tqdm(chunks, desc="survey chunks", unit="chunk"):
        grid = chunk.grid
        aoi = chunk.aoi_mask()
        river_masks = {r: chunk.aoi_mask(r) for r in chunk.rivers}
        min_px = max(1, round(min_area_ha / grid.pixel_area_ha))
        previous: tuple[Period, np.ndarray] | None = None
        for period in periods:
            pair = (chunk.chunk_id, period.label)
            q = np.where(aoi, read_inner(preds[pair], halo, grid.height), 0).astype(np.uint8)
            mask = clean_inner(q >= level(thr), min_px) & aoi
            ctags = {**tags, "chunk_id": chunk.chunk_id, "period": period.label}
            folder = out_dir / "chunks" / period.label
            prob_path, mask_path = folder / f"{chunk.chunk_id}_probability.tif", folder / f"{chunk.chunk_id}_mask.tif"
            write_cog(
                prob_path,
                q,
                grid,
                ["mine_probability"],
                {**ctags, "scale": "probability = value / 255"},
                resampling="average",
            )
            write_cog(mask_path, np.where(aoi, mask, 255).astype(np.uint8), grid, ["mine"], ctags, nodata=255)
            files[(period.label, chunk.zone, "probability")].append((prob_path, grid))
            files[(period.label, chunk.zone, "mask")].append((mask_path, grid))
            mine_pieces += pieces(mask, q / 255.0, chunk, (period.label,))
            truth_path = images[pair][1]
            truth = read_inner(truth_path, halo, grid.height) > 0 if truth_path is not None else None
            for river, rm in river_masks.items():
                pixel_ha[(river, period.label)] += float((mask & rm).sum()) * grid.pixel_area_ha
                if truth is not None:
                    truth_ha[(river, period.label)] += float((truth & rm).sum()) * grid.pixel_area_ha
            if previous is not None:
                classes = monitoring.change(previous[1], mask)
                for k, name in monitoring.CHANGE_NAMES.items():
                    change_pieces += pieces(classes == k, None, chunk, (previous[0].label, period.label, name))
            previous = (period, mask)
    return ChunkMaps(mine_pieces, change_pieces, pixel_ha, truth_ha, files)
