"""Stage infer: monitoring outputs for observations with role `infer`.

Per observation: probability COG, binary mask COG and polygons. Per site across its dates:
mined area over time, change between consecutive dates (new, expanded, abandoned) as a COG
and polygons, and the temporal median of the probabilities with its own mask and polygons.
Sites are done one at a time and only the map's image overlays (PNG) are kept, so memory holds one site.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sandmine import monitoring, report, scale, webmap
from sandmine.calibration import threshold_for
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.files import fresh_dir, round_metrics, write_json, write_text
from sandmine.core.metrics import level
from sandmine.core.raster import Grid, ImageReader, read_image, read_mask, write_cog
from sandmine.steps.common import read_split
from sandmine.vectorize import class_polygons, polygons


def _geojson(path: Path, feats: list[dict]) -> None:
    write_text(path, json.dumps({"type": "FeatureCollection", "features": feats}) + "\n")


def run(
    p: Params,
    model_path: Path,
    images: Path,
    split_csv: Path,
    out_dir: Path,
    metrics: Path,
    report_path: Path,
    plots_dir: Path,
) -> None:
    rows = sorted((r for r in read_split(split_csv) if r["role"] == "infer"), key=lambda r: r["obs_id"])
    fresh_dir(out_dir)
    fresh_dir(plots_dir)
    jobs = [(images / f"{r['obs_id']}.tif", out_dir / f"{r['obs_id']}.tif") for r in rows]
    scale.predict_observations(p.predict, model_path, jobs)
    thr = threshold_for(p.predict.threshold, p.predict.operating_point, model_path)
    rows_by_site: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        rows_by_site[r["site_id"]].append(r)
    by_site: dict[str, list[dict]] = {}  # what the map needs: its image overlays (PNG), polygons, areas
    changes: list[dict] = []
    medians: dict[str, float] = {}
    median_feats: dict[str, list[dict]] = {}
    synthetic = False
    bar = tqdm(total=len(rows), desc="monitor", unit="obs")
    for site, site_rows in sorted(rows_by_site.items()):  # one site at a time: memory holds one site's rasters
        obs = []
        for r in site_rows:
            obs.append(_observation(p, r, images, out_dir, thr))
            synthetic |= obs[-1].pop("source") == "synthetic"
            bar.update()
        obs.sort(key=lambda o: o["date"])
        changes += _site(p, site, obs, images, out_dir, thr, medians, median_feats)
        # the map's overlays are drawn now, so only they (not the rasters) outlive the site
        by_site[site] = [{**o, "overlays": webmap.overlays(o), "rgb": None, "q": None, "mask": None} for o in obs]
    bar.close()
    series = {s: [(o["date"], o["area_ha"]) for o in obs] for s, obs in sorted(by_site.items())}
    lines = ["site_id,date,mined_area_ha,polygons"] + [
        f"{s},{o['date']},{o['area_ha']:.3f},{len(o['features'])}" for s, obs in sorted(by_site.items()) for o in obs
    ]
    write_text(out_dir / "timeseries.csv", "\n".join(lines) + "\n")
    write_text(plots_dir / "timeseries.csv", "\n".join(lines) + "\n")
    lines = ["site_id,from,to,new_ha,expanded_ha,abandoned_ha"] + [
        f"{c['site_id']},{c['from']},{c['to']},{c['new']:.2f},{c['expanded']:.2f},{c['abandoned']:.2f}" for c in changes
    ]
    write_text(out_dir / "change.csv", "\n".join(lines) + "\n")
    report.timeseries_plot(series, plots_dir / "timeseries.png")
    webmap.map_report(by_site, changes, medians, synthetic, report_path, median_feats)
    n_obs = sum(len(v) for v in by_site.values())
    write_json(
        metrics,
        round_metrics(
            {
                "observations": n_obs,
                "sites": len(by_site),
                "threshold": thr,
                "polygons": sum(len(o["features"]) for v in by_site.values() for o in v),
                "mined_area_ha": sum(o["area_ha"] for v in by_site.values() for o in v),
                "median_mined_area_ha": sum(medians.values()),
                "new_ha": sum(c["new"] for c in changes),
                "expanded_ha": sum(c["expanded"] for c in changes),
                "abandoned_ha": sum(c["abandoned"] for c in changes),
            },
            3,
        ),
    )


def _observation(p: Params, r: dict, images: Path, out_dir: Path, thr: float) -> dict:
    """Mask and polygons of one predicted observation (written); its full-size q, mask and true colour."""
    obs_id = r["obs_id"]
    path = images / f"{obs_id}.tif"
    with ImageReader(path) as reader:
        grid, names, image_tags = reader.grid, reader.bands, reader.tags
    tags = {"source": image_tags.get("source", ""), "date": image_tags.get("date", ""), "site_id": r["site_id"]}
    q = read_mask(out_dir / f"{obs_id}.tif", grid)
    min_px = max(1, round(p.infer.min_area_ha / grid.pixel_area_ha))
    mask = monitoring.clean(q >= level(thr), min_px)
    write_cog(out_dir / f"{obs_id}_mask.tif", mask.astype(np.uint8), grid, ["mine"], tags)
    feats = polygons(np.where(mask, q / 255.0, 0.0), grid, thr, p.infer.min_area_ha, {"obs_id": obs_id, **tags})
    _geojson(out_dir / f"{obs_id}.geojson", feats)
    # true colour needs three bands (or the first, without them); its stretch is set by the whole image
    image = read_image(path, ["B4", "B3", "B2"] if {"B4", "B3", "B2"} <= set(names) else None)
    rgb = report.true_colour(image.data, image.bands, keep_nodata=True)  # no data: transparent on the map
    del image
    return {
        "obs_id": obs_id,
        "site_id": r["site_id"],
        "date": tags["date"],
        "source": tags["source"],
        "grid": grid,
        "q": q,
        "mask": mask,
        "features": feats,
        "area_ha": float(sum(f["properties"]["area_ha"] for f in feats)),
        "rgb": rgb,
    }


def _site(
    p: Params,
    site: str,
    obs: list[dict],
    images: Path,
    out_dir: Path,
    thr: float,
    medians: dict[str, float],
    median_feats: dict[str, list[dict]],
) -> list[dict]:
    """Change between consecutive dates and the temporal median of one site (written); the changes.
    The median's mined area and polygons go to `medians` / `median_feats`."""
    grid = _one_grid(site, obs, images)
    changes = []
    for a, b in zip(obs, obs[1:]):
        classes = monitoring.change(a["mask"], b["mask"])
        stem = f"{site}_change_{a['date']}_{b['date']}"
        legend = ", ".join(f"{k}={v}" for k, v in monitoring.CHANGE_NAMES.items())
        write_cog(out_dir / f"{stem}.tif", classes, grid, ["change"], {"classes": legend, "site_id": site})
        feats = class_polygons(
            classes,
            grid,
            monitoring.CHANGE_NAMES,
            p.infer.min_area_ha,
            {"site_id": site, "from": a["date"], "to": b["date"]},
        )
        _geojson(out_dir / f"{stem}.geojson", feats)
        ha = {name: float((classes == k).sum()) * grid.pixel_area_ha for k, name in monitoring.CHANGE_NAMES.items()}
        changes.append({"site_id": site, "from": a["date"], "to": b["date"], **ha, "features": feats})
    if len(obs) > 1:
        median = monitoring.temporal_median([o["q"] for o in obs])
        dates = f"{obs[0]['date']}/{obs[-1]['date']}"
        write_cog(
            out_dir / f"{site}_median.tif",
            median,
            grid,
            ["mine_probability"],
            {"site_id": site, "dates": dates, "scale": "probability = value / 255"},
            resampling="average",
        )
        mask = monitoring.clean(median >= level(thr), max(1, round(p.infer.min_area_ha / grid.pixel_area_ha)))
        feats = polygons(
            np.where(mask, median / 255.0, 0.0), grid, thr, p.infer.min_area_ha, {"site_id": site, "dates": dates}
        )
        _geojson(out_dir / f"{site}_median.geojson", feats)
        medians[site] = float(sum(f["properties"]["area_ha"] for f in feats))
        median_feats[site] = feats
    return changes


def _one_grid(site: str, obs: list[dict], images: Path) -> Grid:
    grid = obs[0]["grid"]
    for o in obs[1:]:
        if o["grid"] != grid:
            raise SandmineError(
                f"site '{site}' has observations on different grids ({obs[0]['obs_id']}, {o['obs_id']})",
                str(images / f"{o['obs_id']}.tif"),
                "export every date of a site on the site's grid (same CRS, origin and size)",
            )
    return grid
