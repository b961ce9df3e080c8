"""Stage survey: every river of `survey.rivers` within `aoi.buffer_m`, for each of `survey.periods`.

1. plan: the buffer cut into chunks (UTM squares with stable ids, `sandmine.survey`);
2. export each (chunk, period) not yet in `survey.cache_dir` through the source (`source.kind`): the
   synthetic world renders its long river, Earth Engine exports a composite over the period, a local
   folder `source.images_dir/<START_END>/` of scenes is mosaicked onto the chunk's grid;
3. predict each (chunk, period) not yet cached for this model and stitching, over Dask (`scale.py`);
4. per chunk: probability and mask inside the buffer, polygons, change between consecutive periods;
5. polygons merged across chunk seams; a mosaic per period and zone (VRT + COG of probability and
   mask); `survey.gpkg` (layers mines, change, chunks and the table area); a Leaflet map page.

Caches are keyed by everything that decides their pixels, so adding a period or a river exports and
predicts only the new chunks, and the outputs (rebuilt from the caches every run) are the same.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from shapely.geometry import box
from tqdm import tqdm

from sandmine import alerts, monitoring, scale, webmap
from sandmine import survey as sv
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.files import check_outputs, claim_dir, fresh_dir, output_lock, round_metrics, write_json
from sandmine.core.metrics import level
from sandmine.core.raster import Grid, ImageReader, has_valid_pixel, to_crs, write_cog
from sandmine.core.windows import starts
from sandmine.steps.predicting import stitch, threshold

log = logging.getLogger(__name__)
SYNTHETIC_RECIPE = "sandmine-synthetic-river-v1"


@dataclasses.dataclass
class Counts:
    """What a run did: chunks, and (chunk, period) pairs exported / predicted now or found cached."""

    chunks: int = 0
    buffer_km2: float = 0.0
    exported: int = 0
    export_cached: int = 0
    predicted: int = 0
    predict_cached: int = 0
    periods: list[str] = dataclasses.field(default_factory=list)
    predicted_pairs: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # per phase: plan, export, predict, outputs


def run(
    p: Params,
    model_path: Path,
    out_dir: Path,
    report_path: Path,
    metrics_path: Path,
    params_path: Path | None = None,
) -> Counts:
    """Survey every river; before any work, refuse outputs that would destroy an input or a user's folder.

    `out_dir` must be new, empty, or a folder of an earlier survey (it is emptied); `params_path`, when
    given, is one more input that no output may overwrite.
    """
    inputs = {
        "--model": model_path,
        "--params": params_path,
        "survey.rivers": Path(p.survey.rivers),
        "survey.region": Path(p.survey.region) if p.survey.region else None,
        "survey.zones": Path(p.survey.zones) if p.survey.zones else None,
        "survey.cache_dir": Path(p.survey.cache_dir).expanduser(),
    }
    check_outputs(inputs, {"--report": report_path, "--metrics": metrics_path}, {"--out": out_dir})
    claim_dir(out_dir, "--out")
    with output_lock(out_dir, report_path, metrics_path):
        return _run(p, model_path, out_dir, report_path, metrics_path)


def _run(p: Params, model_path: Path, out_dir: Path, report_path: Path, metrics_path: Path) -> Counts:
    import pandas as pd

    t0 = time.perf_counter()
    where = "params.yaml: survey"
    periods = sv.parse_periods(p.survey.periods, f"{where}.periods")
    rivers = sv.read_rivers(p.survey.rivers, p.survey.river_field, p.survey.region or None, p.survey.rivers_layer)
    chunks = sv.plan_chunks(rivers, p.aoi.buffer_m, p.survey.chunk_km)
    by_id = {c.chunk_id: c for c in chunks}
    buffer_km2 = sum(c.aoi.area for c in chunks) / 1e6
    log.info(
        "survey: %d river(s), %d chunks of %g km in %d zone(s), %.1f km² of buffer, %d period(s)",
        len(rivers),
        len(chunks),
        p.survey.chunk_km,
        len({c.zone for c in chunks}),
        buffer_km2,
        len(periods),
    )
    side = int(round(p.survey.chunk_km * 1000 / sv.RES_M)) + 2 * p.survey.halo_px
    if side > p.predict.window_px:
        n = len(starts(side, p.predict.window_px, p.predict.stride_px)) ** 2
        log.warning(
            "a chunk with its halo is %d px, more than one %d px window: %d windows each; survey.chunk_km = "
            "(predict.window_px - 2 * survey.halo_px) / 100 predicts each chunk in one window",
            side,
            p.predict.window_px,
            n,
        )
    cache = Path(p.survey.cache_dir).expanduser()
    counts = Counts(chunks=len(chunks), buffer_km2=buffer_km2, periods=[q.label for q in periods])
    counts.seconds["plan"] = time.perf_counter() - t0
    images = _export(p, rivers, chunks, periods, cache, counts)
    counts.seconds["export"] = time.perf_counter() - t0 - sum(counts.seconds.values())
    preds = _predict(p, model_path, images, cache, counts)
    counts.seconds["predict"] = time.perf_counter() - t0 - sum(counts.seconds.values())
    thr = threshold(p, model_path)
    fresh_dir(out_dir, "--out")
    synthetic = p.source.kind == "synthetic"
    tags = {
        "source": p.source.kind,
        **({"note": "SYNTHETIC: the embedded world, not real imagery"} if synthetic else {}),
    }
    mine_pieces: list[sv.Piece] = []
    change_pieces: list[sv.Piece] = []
    pixel_ha: dict[tuple[str, str], float] = defaultdict(float)  # (river, period) → predicted ha (pixels)
    truth_ha: dict[tuple[str, str], float] = defaultdict(float)
    files: dict[tuple[str, sv.Zone, str], list[tuple[Path, Grid]]] = defaultdict(list)  # (period, zone, kind)
    halo = p.survey.halo_px
    for chunk in tqdm(chunks, desc="survey chunks", unit="chunk"):
        grid = chunk.grid
        aoi = chunk.aoi_mask()
        river_masks = {r: chunk.aoi_mask(r) for r in chunk.rivers}
        min_px = max(1, round(p.infer.min_area_ha / grid.pixel_area_ha))
        previous: tuple[sv.Period, np.ndarray] | None = None
        for period in periods:
            pair = (chunk.chunk_id, period.label)
            q = np.where(aoi, sv.read_inner(preds[pair], halo, grid.height), 0).astype(np.uint8)
            mask = sv.clean_inner(q >= level(thr), min_px) & aoi
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
            mine_pieces += sv.pieces(mask, q / 255.0, chunk, (period.label,))
            truth_path = images[pair][1]
            truth = sv.read_inner(truth_path, halo, grid.height) > 0 if truth_path is not None else None
            for river, rm in river_masks.items():
                pixel_ha[(river, period.label)] += float((mask & rm).sum()) * grid.pixel_area_ha
                if truth is not None:
                    truth_ha[(river, period.label)] += float((truth & rm).sum()) * grid.pixel_area_ha
            if previous is not None:
                classes = monitoring.change(previous[1], mask)
                for k, name in monitoring.CHANGE_NAMES.items():
                    change_pieces += sv.pieces(classes == k, None, chunk, (previous[0].label, period.label, name))
            previous = (period, mask)
    mines = [m for m in sv.merge_seams(mine_pieces, by_id) if m.area_ha >= p.infer.min_area_ha]
    changes = [m for m in sv.merge_seams(change_pieces, by_id) if m.area_ha >= p.infer.min_area_ha]
    log.info(
        "polygons: %d mines (%d across chunk seams), %d change",
        len(mines),
        sum(len(m.chunks) > 1 for m in mines),
        len(changes),
    )
    mosaics = _mosaics(files, out_dir / "mosaic", tags)
    frames = _frames(mines, changes, chunks, by_id, periods, pixel_ha, truth_ha if synthetic else None)
    # ---- alerts (issue #23; all logic in sandmine.alerts): new / expanded mines in or near survey.zones become the
    # layer `alerts` of survey.gpkg and alerts.csv; `found` also feeds the map (_map) and the metrics below.
    # survey.zones "": found is None, nothing is written.
    found = alerts.for_survey(p.survey, frames["mines"], [q.label for q in periods], out_dir / "alerts.csv")
    if found is not None:
        frames["alerts"] = found.alerts
    # ----
    sv.write_gpkg(out_dir / "survey.gpkg", frames)
    _map(p, chunks, periods, images, preds, frames, synthetic, report_path, found.map if found else None)
    area = frames["area"]
    assert isinstance(area, pd.DataFrame)
    seconds = time.perf_counter() - t0
    counts.seconds["outputs"] = seconds - sum(counts.seconds.values())
    metrics = {
        "rivers": len(rivers),
        "chunks": len(chunks),
        "periods": len(periods),
        "buffer_km2": buffer_km2,
        "threshold": thr,
        "mine_polygons": len(mines),
        "mines_across_seams": sum(len(m.chunks) > 1 for m in mines),
        "mined_ha": {q.label: float(area[area.period == q.label].mined_ha.sum()) for q in periods},
        "change_ha": {
            name: float(sum(m.area_ha for m in changes if m.key[2] == name))
            for name in monitoring.CHANGE_NAMES.values()
        },
        **(found.metrics if found else {}),  # alerts (see the hook above)
    }
    if synthetic:
        metrics["truth_ha"] = {q.label: float(area[area.period == q.label].truth_ha.sum()) for q in periods}
        metrics["pixel_ha"] = {q.label: float(area[area.period == q.label].pixel_ha.sum()) for q in periods}
    write_json(metrics_path, round_metrics(metrics, 3))
    _summary(area, buffer_km2, counts, mosaics, out_dir, seconds)
    return counts


# ------------------------------------------------------------------------------------------------ export


def _key(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _export(
    p: Params, rivers: list[sv.River], chunks: list[sv.Chunk], periods: list[sv.Period], cache: Path, counts: Counts
) -> dict[tuple[str, str], tuple[Path, Path | None]]:
    """The image (and, from the synthetic world, the exact truth) of every (chunk, period), exporting
    only those not in the cache. Stops when a period has no imagery over any chunk."""
    if p.source.kind == "synthetic":
        out = _export_synthetic(p, rivers, chunks, periods, cache, counts)
    elif p.source.kind == "gee":
        out = _export_gee(p, chunks, periods, counts)
    elif p.source.kind == "stac":
        from sandmine.sources import stac

        done = stac.export_survey(chunks, periods, p.survey.halo_px, p.bands, stac.settings(p.stac), p.stac.cache_dir)
        out = {key: (path, None) for key, path in done.items()}
        counts.exported += len(out)  # the source's cache says what it did not export again
    else:
        out = _export_local(p, chunks, periods, cache, counts)
    for period in periods:
        if not any(has_valid_pixel(out[(c.chunk_id, period.label)][0]) for c in chunks):
            raise SandmineError(
                f"period {period.start}/{period.end} has no imagery over any of the {len(chunks)} chunks",
                "params.yaml: survey.periods",
                "check the period's dates against the source's archive (Sentinel-2 from 2017, Sentinel-1 from 2014), "
                "or drop the period",
            )
    log.info(
        "export: %d (chunk, period) exported now, %d from the cache %s", counts.exported, counts.export_cached, cache
    )
    return out


def _export_synthetic(
    p: Params, rivers: list[sv.River], chunks: list[sv.Chunk], periods: list[sv.Period], cache: Path, counts: Counts
) -> dict[tuple[str, str], tuple[Path, Path | None]]:
    from sandmine.sources.synthetic import river as world_river

    worlds: dict[str, world_river.LongRiver] = {}
    for r in rivers:
        if r.properties.get("synthetic") != SYNTHETIC_RECIPE:
            raise SandmineError(
                f"river '{r.name}' is not one of the synthetic world's rivers (no 'synthetic: {SYNTHETIC_RECIPE}')",
                p.survey.rivers,
                "the embedded world renders only its own rivers: write them with "
                "`python -m sandmine.sources.synthetic.catalogue data/surveys --size river`, "
                "or survey real imagery with source.kind gee or local",
            )
        worlds[r.name] = world_river.LongRiver.from_properties(r.properties)
    todo: list[tuple] = []
    out: dict[tuple[str, str], tuple[Path, Path | None]] = {}
    for c in chunks:
        name = max(c.rivers, key=lambda n: (c.river_aois[n].area, n))  # the chunk's main river draws it
        recipe = {"world": dataclasses.asdict(p.world), "bands": p.bands, "river": worlds[name].properties()}
        key = _key({**recipe, "halo_px": p.survey.halo_px})
        for q in periods:
            img = cache / "images" / key / q.label / f"{c.chunk_id}.tif"
            truth = cache / "truth" / key / q.label / f"{c.chunk_id}.tif"
            out[(c.chunk_id, q.label)] = (img, truth)
            if img.exists() and truth.exists():
                counts.export_cached += 1
            else:
                tags = {"chunk_id": c.chunk_id, "period": q.label, "halo_px": str(p.survey.halo_px)}
                todo.append((worlds[name], c.grid_with(p.survey.halo_px), q.middle, img, truth, tags))
    counts.exported += len(todo)
    scale.run_many(
        _render_one,
        [(*t, p.bands, p.world) for t in todo],
        p.predict.workers,
        p.predict.scheduler,
        "export (synthetic)",
    )
    return out


def _render_one(
    river: object, grid: Grid, date: dt.date, img: Path, truth: Path, tags: dict, bands: list[str], world: object
) -> None:
    from sandmine.sources.synthetic import river as world_river

    world_river.export_window(river, grid, date, bands, world, img, truth, tags)  # type: ignore[arg-type]


def _export_gee(
    p: Params, chunks: list[sv.Chunk], periods: list[sv.Period], counts: Counts
) -> dict[tuple[str, str], tuple[Path, Path | None]]:
    """Earth Engine batch tasks (or computePixels) per (chunk, period), a median composite over the
    period, through the source's own cache and retries (`gee.cache_dir`, `gee.max_retries`)."""
    from sandmine.sources import gee

    g = p.gee
    out: dict[tuple[str, str], tuple[Path, Path | None]] = {}
    gee.initialize(g.project)
    cache = Path(g.cache_dir).expanduser()
    for q in periods:
        s = gee.ExportSettings(g.product, q.days, g.cs_threshold, g.bucket, g.prefix, g.max_retries, g.poll_s)
        missing = [b for b in p.bands if b not in s.bands()]
        if missing:
            raise SandmineError(f"Earth Engine {g.product} exports have no band(s) {missing}", "params.yaml: bands")
        h = p.survey.halo_px
        day = q.middle.isoformat()
        jobs = [(f"{c.chunk_id}_h{h}_{q.label}", c.bounds_4326(h), day, c.grid_with(h)) for c in chunks]
        done = gee.export(jobs, s, g.mode, cache)
        for c in chunks:
            out[(c.chunk_id, q.label)] = (done[f"{c.chunk_id}_h{h}_{q.label}"], None)
    counts.exported += len(out)  # the source's cache says what it did not export again
    return out


def _export_local(
    p: Params, chunks: list[sv.Chunk], periods: list[sv.Period], cache: Path, counts: Counts
) -> dict[tuple[str, str], tuple[Path, Path | None]]:
    """Scenes of `source.images_dir/<START_END>/*.tif` (named bands, any CRS) mosaicked onto each
    chunk's grid: the first scene (by name) with a valid pixel wins."""
    from sandmine.core.raster import read_grid
    from sandmine.sources import local

    if not p.source.images_dir:
        raise SandmineError("'source.images_dir' is empty", "params.yaml", "name the folder of your period folders")
    root = Path(p.source.images_dir).expanduser()
    out: dict[tuple[str, str], tuple[Path, Path | None]] = {}
    for q in periods:
        folder = root / q.label
        scenes = sorted(folder.glob("*.tif")) if folder.is_dir() else []
        if not scenes:
            raise SandmineError(
                f"period {q.start}/{q.end} has no imagery: no scene in {folder}",
                "params.yaml: survey.periods",
                f"put the period's GeoTIFFs (bands named B2, B3, …) in {folder}",
            )
        footprints = []
        for s in scenes:
            g = read_grid(s)
            footprints.append((s, to_crs(box(*g.bounds), g.crs, "EPSG:4326")))
        files = [(str(s), s.stat().st_mtime_ns, s.stat().st_size) for s in scenes]
        key = _key({"bands": p.bands, "scenes": files, "halo_px": p.survey.halo_px})
        for c in tqdm(chunks, desc=f"export (local {q.label})", unit="chunk"):
            img = cache / "images" / key / q.label / f"{c.chunk_id}.tif"
            out[(c.chunk_id, q.label)] = (img, None)
            if img.exists():
                counts.export_cached += 1
                continue
            box4326 = box(*c.bounds_4326(p.survey.halo_px))
            grid = c.grid_with(p.survey.halo_px)
            data = np.full((len(p.bands), grid.height, grid.width), np.nan, np.float32)
            for s, fp in footprints:
                if fp.intersects(box4326):
                    part = local.read_geotiff(s, p.bands, grid)
                    hole = np.isnan(data)
                    data[hole] = part[hole]
            local.write_image(img, data, p.bands, grid, {"source": "local-geotiff", "date": q.middle.isoformat()})
            counts.exported += 1
    return out


# ----------------------------------------------------------------------------------------------- predict


def _predict(
    p: Params, model_path: Path, images: dict[tuple[str, str], tuple[Path, Path | None]], cache: Path, counts: Counts
) -> dict[tuple[str, str], Path]:
    """Probability COGs of every (chunk, period), predicting on Dask only those not cached for this
    model, stitching and image."""
    if not model_path.exists():
        raise SandmineError("checkpoint not found", str(model_path), "run the train stage first")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    q = p.predict
    recipe = {"model": digest, "stitch": dataclasses.asdict(stitch(p))}
    out, jobs = {}, []
    for pair, (img, _) in sorted(images.items()):
        key = _key({**recipe, "image": str(img.resolve()), "size": img.stat().st_size, "mtime": img.stat().st_mtime_ns})
        dst = cache / "predictions" / key[:2] / f"{key}.tif"
        out[pair] = dst
        if dst.exists():
            counts.predict_cached += 1
        else:
            jobs.append(scale.Job(img, dst, (("chunk_id", pair[0]), ("period", pair[1]))))
            counts.predicted_pairs.append(pair)
    counts.predicted = len(jobs)
    log.info("predict: %d (chunk, period) to predict, %d from the cache", len(jobs), counts.predict_cached)
    if jobs:
        scale.predict_many(model_path, jobs, stitch(p), q.workers, q.scheduler, q.tile_rows, q.threads, q.device)
    return out


# ------------------------------------------------------------------------------------------------ outputs


def _mosaics(files: dict[tuple[str, sv.Zone, str], list[tuple[Path, Grid]]], folder: Path, tags: dict) -> list[Path]:
    """Per period and zone a VRT and a COG of the probability and of the mask."""
    written = []
    for (period, zone, kind), sources in tqdm(
        sorted(files.items(), key=lambda kv: (kv[0][0], kv[0][1].epsg, kv[0][2])), desc="mosaic", unit="file"
    ):
        stem = folder / f"{period}_{zone.name}_{kind}"
        band = "mine_probability" if kind == "probability" else "mine"
        sv.write_vrt(stem.with_suffix(".vrt"), sources, band, None if kind == "probability" else 255)
        extra = (
            {"scale": "probability = value / 255"}
            if kind == "probability"
            else {"classes": "0=no mine, 1=mine, 255=outside the survey"}
        )
        sv.vrt_to_cog(
            stem.with_suffix(".vrt"),
            stem.with_suffix(".tif"),
            band,
            {**tags, "period": period, "zone": zone.name, **extra},
            "average" if kind == "probability" else "mode",
            nodata=None if kind == "probability" else 255,
        )
        written += [stem.with_suffix(".vrt"), stem.with_suffix(".tif")]
    return written


def _frames(
    mines: list[sv.Merged],
    changes: list[sv.Merged],
    chunks: list[sv.Chunk],
    by_id: dict[str, sv.Chunk],
    periods: list[sv.Period],
    pixel_ha: dict[tuple[str, str], float],
    truth_ha: dict[tuple[str, str], float] | None,
) -> dict[str, object]:
    """The GeoPackage's layers (EPSG:4326): mines, change, chunks, and the table area."""
    import geopandas as gpd
    import pandas as pd

    def rows(items: list[sv.Merged], change: bool) -> gpd.GeoDataFrame:
        recs, geoms = [], []
        for m in items:
            rec: dict[str, object] = {
                "river": sv.nearest_river(m.geometry, m.chunks, by_id),
                "chunk": ",".join(m.chunks),
            }
            if change:
                rec |= {"from": m.key[0], "to": m.key[1], "change": m.key[2], "area_ha": round(m.area_ha, 3)}
            else:
                rec |= {"period": m.key[0], "area_ha": round(m.area_ha, 3), "mean_prob": round(m.mean_prob, 3)}
            recs.append(rec)
            geoms.append(to_crs(m.geometry, f"EPSG:{m.zone.epsg}", "EPSG:4326"))
        cols = (
            ["river", "chunk", "from", "to", "change", "area_ha"]
            if change
            else ["river", "chunk", "period", "area_ha", "mean_prob"]
        )
        return gpd.GeoDataFrame(pd.DataFrame(recs, columns=cols), geometry=geoms, crs="EPSG:4326")

    mine_frame, change_frame = rows(mines, False), rows(changes, True)
    chunk_frame = gpd.GeoDataFrame(
        pd.DataFrame(
            [
                {
                    "chunk": c.chunk_id,
                    "zone": c.zone.name,
                    "rivers": ",".join(c.rivers),
                    "buffer_km2": round(c.aoi.area / 1e6, 4),
                }
                for c in chunks
            ]
        ),
        geometry=[to_crs(c.square, c.crs, "EPSG:4326") for c in chunks],
        crs="EPSG:4326",
    )
    buffer_km2: dict[str, float] = defaultdict(float)
    n_chunks: dict[str, int] = defaultdict(int)
    for c in chunks:
        for r, aoi in c.river_aois.items():
            buffer_km2[r] += aoi.area / 1e6
            n_chunks[r] += 1
    recs = []
    for r in sorted(buffer_km2):
        for i, q in enumerate(periods):
            sel = mine_frame[(mine_frame.river == r) & (mine_frame.period == q.label)]
            rec = {
                "river": r,
                "period": q.label,
                "start": q.start.isoformat(),
                "end": q.end.isoformat(),
                "mined_ha": round(float(sel.area_ha.sum()), 3),
                "polygons": len(sel),
                "pixel_ha": round(pixel_ha[(r, q.label)], 3),
                "buffer_km2": round(buffer_km2[r], 3),
                "chunks": n_chunks[r],
            }
            for name in monitoring.CHANGE_NAMES.values():
                ch = change_frame[
                    (change_frame.river == r) & (change_frame.to == q.label) & (change_frame.change == name)
                ]
                rec[f"{name}_ha"] = round(float(ch.area_ha.sum()), 3) if i else None
            if truth_ha is not None:
                rec["truth_ha"] = round(truth_ha[(r, q.label)], 3)
            recs.append(rec)
    return {"mines": mine_frame, "change": change_frame, "chunks": chunk_frame, "area": pd.DataFrame(recs)}


def _map(
    p: Params,
    chunks: list[sv.Chunk],
    periods: list[sv.Period],
    images: dict[tuple[str, str], tuple[Path, Path | None]],
    preds: dict[tuple[str, str], Path],
    frames: dict[str, object],
    synthetic: bool,
    path: Path,
    alert_layers: dict | None = None,
) -> None:
    """The survey on the Leaflet map: one entry per zone, one date per period (true colour and
    probability at a coarser resolution), mine and change polygons at full detail."""
    import geopandas as gpd

    mines, change = frames["mines"], frames["change"]
    assert isinstance(mines, gpd.GeoDataFrame) and isinstance(change, gpd.GeoDataFrame)
    by_site, changes = {}, []
    for zone in sorted({c.zone for c in chunks}, key=lambda z: z.epsg):
        zc = [c for c in chunks if c.zone == zone]
        canvas, f = _canvas(zc)
        zone_mines = mines[mines.chunk.str.split(",").str[0].isin({c.chunk_id for c in zc})]
        site = f"survey {zone.name}"
        obs = []
        for q in periods:
            rgb, prob = _draw(zc, canvas, f, q, images, preds, p.survey.halo_px)
            sel = zone_mines[zone_mines.period == q.label]
            day = q.middle.isoformat()  # the map's date switch and chart place a period at its middle
            feats = [
                {
                    "type": "Feature",
                    "properties": {**r.drop("geometry").to_dict(), "date": q.label, "obs_id": q.label},
                    "geometry": r.geometry.__geo_interface__,
                }
                for _, r in sel.iterrows()
            ]
            area_ha = float(sel.area_ha.sum())
            obs.append(
                {
                    "obs_id": q.label,
                    "date": day,
                    "grid": canvas,
                    "rgb": rgb,
                    "q": prob,
                    "features": feats,
                    "area_ha": area_ha,
                }
            )
        zone_change = change[change.chunk.str.split(",").str[0].isin({c.chunk_id for c in zc})]
        for a, b in zip(periods, periods[1:]):
            sel = zone_change[zone_change.to == b.label]
            feats = [
                {
                    "type": "Feature",
                    "properties": {"change": r.change, "area_ha": r.area_ha, "from": a.label, "to": b.label},
                    "geometry": r.geometry.__geo_interface__,
                }
                for _, r in sel.iterrows()
            ]
            ha = {name: float(sel[sel.change == name].area_ha.sum()) for name in monitoring.CHANGE_NAMES.values()}
            changes.append(
                {"site_id": site, "from": a.middle.isoformat(), "to": b.middle.isoformat(), **ha, "features": feats}
            )
        by_site[site] = obs
    webmap.map_report(by_site, changes, {}, synthetic, path, alerts=alert_layers)


def _canvas(chunks: list[sv.Chunk]) -> tuple[Grid, int]:
    """A coarser grid over the chunks of one zone for the map's image overlays (longest side ≤ 4096 px)."""
    from rasterio.transform import from_origin

    left = min(c.square.bounds[0] for c in chunks)
    bottom = min(c.square.bounds[1] for c in chunks)
    right = max(c.square.bounds[2] for c in chunks)
    top = max(c.square.bounds[3] for c in chunks)
    size = int(round(chunks[0].size_m / sv.RES_M))
    longest = max(right - left, top - bottom) / sv.RES_M
    f = next(d for d in range(1, size + 1) if size % d == 0 and longest / d <= 4096)
    res = sv.RES_M * f
    return Grid(
        chunks[0].crs,
        from_origin(left, top, res, res),
        int(round((top - bottom) / res)),
        int(round((right - left) / res)),
    ), f


def _draw(
    chunks: list[sv.Chunk],
    canvas: Grid,
    f: int,
    period: sv.Period,
    images: dict[tuple[str, str], tuple[Path, Path | None]],
    preds: dict[tuple[str, str], Path],
    halo: int,
) -> tuple[np.ndarray, np.ndarray]:
    """True colour (H, W, 3) and probability (uint8) of one period on the canvas, chunk by chunk."""
    from sandmine.report import true_colour

    rgb = np.full((3, canvas.height, canvas.width), np.nan, np.float32)
    prob = np.zeros((canvas.height, canvas.width), np.uint8)
    for c in chunks:
        n = c.grid.height // f
        x = int(round((c.square.bounds[0] - canvas.bounds[0]) / canvas.res_m))
        y = int(round((canvas.bounds[3] - c.square.bounds[3]) / canvas.res_m))
        img, _ = images[(c.chunk_id, period.label)]
        with ImageReader(img) as reader:
            names: list[str] = [b for b in ("B4", "B3", "B2") if b in reader.bands] or reader.bands[:1]
        with ImageReader(img, names) as reader:
            data = reader.read_rows(halo, halo + c.grid.height, halo, halo + c.grid.width)
        block = data.reshape(len(names), n, f, n, f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks (nodata) stay NaN
            rgb[: len(names), y : y + n, x : x + n] = np.nanmean(block, axis=(2, 4))
        q = sv.read_inner(preds[(c.chunk_id, period.label)], halo, c.grid.height) * c.aoi_mask()
        prob[y : y + n, x : x + n] = q.reshape(n, f, n, f).mean(axis=(1, 3)).round().astype(np.uint8)
    return true_colour(rgb, ["B4", "B3", "B2"], keep_nodata=True), prob  # no data (NaN): transparent on the map


def _summary(
    area: object, buffer_km2: float, counts: Counts, mosaics: list[Path], out_dir: Path, seconds: float
) -> None:
    import pandas as pd

    assert isinstance(area, pd.DataFrame)
    lines = [
        "",
        f"survey: {buffer_km2:,.1f} km² of river buffer in {counts.chunks} chunks × {len(counts.periods)} period(s), "
        f"{seconds:,.0f} s ({counts.exported} exported / {counts.export_cached} cached, "
        f"{counts.predicted} predicted / {counts.predict_cached} cached)",
    ]
    cols = ["river", "period", "mined_ha", "polygons", "new_ha", "expanded_ha", "abandoned_ha"]
    if "truth_ha" in area.columns:
        cols.append("truth_ha")
    lines.append(area[cols].to_string(index=False, na_rep="-"))
    gpkg, folder = out_dir / "survey.gpkg", out_dir / "mosaic"
    lines.append(f"GeoPackage {gpkg} (layers mines, change, chunks, area); {len(mosaics)} mosaic files in {folder}")
    print("\n".join(lines))
