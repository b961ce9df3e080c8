"""One function per DVC stage: read the stage's inputs, call the modules, write its outputs.

Stage scripts in `stages/` parse paths and params and call exactly one of these.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sandmine import aoi as aoi_mod
from sandmine import labels as labels_mod
from sandmine import models, prediction, report, split, training
from sandmine.config import Params
from sandmine.errors import SandmineError
from sandmine.files import fresh_dir, round_metrics, write_json, write_text
from sandmine.metrics import Histogram, quantise
from sandmine.raster import Image, read_image, read_mask, write_cog
from sandmine.sites import read_observations, read_sites
from sandmine.sources import labelbox
from sandmine.vectorize import polygons

log = logging.getLogger(__name__)


def export(
    p: Params, sites_path: Path, obs_path: Path, images_dir: Path, source_dir: Path, previews_dir: Path | None = None
) -> None:
    sites = read_sites(sites_path)
    observations = read_observations(obs_path, sites)
    if p.source.kind != "synthetic":
        raise SandmineError(
            f"source '{p.source.kind}' is not available in this version", "params.yaml: source.kind", "use 'synthetic'"
        )
    from sandmine.sources.synthetic.world import export as synthetic_export

    fresh_dir(images_dir)
    fresh_dir(source_dir)
    if previews_dir is not None:
        fresh_dir(previews_dir)
    synthetic_export(sites, observations, p.bands, p.world, images_dir, source_dir, previews_dir)


def annotate_pull(p: Params, source_dir: Path, images_dir: Path, out_dir: Path, metrics: Path) -> None:
    manifest = labels_mod.read_manifest(images_dir / "manifest.csv")
    rows = (
        labelbox.read_ndjson(source_dir / "labels.ndjson")
        if p.labels.source == "synthetic"
        else labelbox.fetch_export(p.labels.project_id)
    )
    fresh_dir(out_dir)
    stats = labels_mod.pull(rows, manifest, images_dir, out_dir, p.labels)
    write_json(metrics, round_metrics(stats, 5))


def make_aoi(p: Params, images_dir: Path, rivers_path: Path, out_dir: Path) -> None:
    manifest = labels_mod.read_manifest(images_dir / "manifest.csv")
    rivers = aoi_mod.read_rivers(rivers_path) if p.aoi.rivers == "vector" else []
    fresh_dir(out_dir)
    for rec in tqdm(manifest, desc="aoi", unit="obs"):
        image = read_image(images_dir / rec["file"], ["B3", "B11"] if p.aoi.rivers == "water_index" else None)
        grid = image.grid
        if p.aoi.rivers == "vector":
            mask = aoi_mod.rasterize(aoi_mod.from_vector(rivers, grid, p.aoi), grid)
        else:
            mask = aoi_mod.from_water_index(image, p.aoi)
        if not mask.any():
            log.warning("%s: no river found, AOI is empty", rec["obs_id"])
        write_cog(out_dir / f"{rec['obs_id']}.tif", mask.astype(np.uint8), grid, ["aoi"])
        write_text(
            out_dir / f"{rec['obs_id']}.geojson",
            json.dumps(aoi_mod.to_geojson(aoi_mod.polygon_of(mask, grid), grid, rec["obs_id"])) + "\n",
        )


def make_split(
    p: Params, sites_path: Path, obs_path: Path, labels_dir: Path, out_csv: Path, metrics: Path, plot: Path
) -> None:
    sites = read_sites(sites_path)
    observations = read_observations(obs_path, sites)
    with (labels_dir / "index.csv").open(newline="") as fh:
        index = list(csv.DictReader(fh))
    ok = {r["obs_id"] for r in index if r["status"] == "done"}
    fractions = {r["obs_id"]: float(r["mine_fraction"]) for r in index if r["status"] == "done"}
    rows = split.assign(sites, observations, ok, p.split)
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["obs_id", "site_id", "cluster", "role"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(out_csv, buf.getvalue())
    stats: dict[str, float] = {"clusters": p.split.n_clusters, "fold": p.split.fold}
    for role in ("train", "val", "test", "infer"):
        mine = [r for r in rows if r["role"] == role]
        stats[f"{role}_observations"] = len(mine)
        stats[f"{role}_sites"] = len({r["site_id"] for r in mine})
        if role != "infer" and mine:
            stats[f"{role}_mine_fraction"] = float(np.mean([fractions[r["obs_id"]] for r in mine]))
    write_json(metrics, round_metrics(stats, 5))
    centroids = {s: (g.geometry.centroid.x, g.geometry.centroid.y) for s, g in sites.items()}
    report.split_map(rows, centroids, plot)


def _read_split(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _scene(
    obs_id: str, bands: list[str], images: Path, labels: Path, aois: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = read_image(images / f"{obs_id}.tif", bands)
    label = read_mask(labels / f"{obs_id}.tif", image.grid)
    aoi = read_mask(aois / f"{obs_id}.tif", image.grid) > 0
    if np.isnan(image.data).all():
        raise SandmineError("image has no valid pixel", str(images / f"{obs_id}.tif"), "re-export it")
    return image.data, label, aoi


def train(
    p: Params,
    images: Path,
    labels: Path,
    aois: Path,
    split_csv: Path,
    model_out: Path,
    metrics: Path,
    on_epoch: Callable[[int, dict[str, float]], None],
) -> None:
    models.check(p.model.encoder, p.model.decoder)
    torch.set_num_threads(p.train.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rows = _read_split(split_csv)
    raw = {
        r["obs_id"]: _scene(r["obs_id"], p.model.bands, images, labels, aois)
        for r in rows
        if r["role"] in ("train", "val")
    }
    train_ids = [r["obs_id"] for r in rows if r["role"] == "train"]
    from sandmine.bands import to_model_units

    units = {k: to_model_units(v[0], p.model.bands) for k, v in raw.items()}
    mean, std = training.band_stats([units[k] for k in train_ids], [raw[k][2] for k in train_ids])
    scenes = {
        k: training.Scene(k, prediction.normalise(v[0], p.model.bands, mean, std), v[1], v[2]) for k, v in raw.items()
    }
    torch.manual_seed(p.train.seed)
    model = models.build(p.model.encoder, p.model.decoder, len(p.model.bands))
    start = time.perf_counter()
    model, summary = training.fit(
        model,
        [scenes[k] for k in train_ids],
        [scenes[r["obs_id"]] for r in rows if r["role"] == "val"],
        p.train,
        on_epoch,
    )
    log.info("trained in %.0f s", time.perf_counter() - start)
    ckpt = models.save_checkpoint(
        model,
        {
            "encoder": p.model.encoder,
            "decoder": p.model.decoder,
            "bands": list(p.model.bands),
            "mean": mean.tolist(),
            "std": std.tolist(),
            "window_px": p.train.window_px,
            "train": {k: v for k, v in vars(p.train).items()},
        },
    )
    from sandmine.files import atomic_path

    with atomic_path(model_out) as tmp:
        torch.save(ckpt, tmp)
    summary["parameters"] = sum(t.numel() for t in model.parameters())
    write_json(metrics, round_metrics(summary))


def _predict_obs(model: torch.nn.Module, ckpt: dict, p: Params, path: Path) -> tuple[np.ndarray, Image]:
    image = read_image(path, ckpt["bands"])
    x = prediction.normalise(
        image.data, ckpt["bands"], np.array(ckpt["mean"], np.float32), np.array(ckpt["std"], np.float32)
    )
    prob = prediction.predict(
        model, x, p.predict.window_px, p.predict.stride_px, p.predict.discard_px, p.predict.batch_size
    )
    prob[np.isnan(image.data).any(axis=0)] = 0.0
    return prob, image


def evaluate(
    p: Params,
    model_path: Path,
    images: Path,
    labels: Path,
    aois: Path,
    split_csv: Path,
    out_dir: Path,
    metrics: Path,
    plots_dir: Path,
    truth_dir: Path | None = None,
) -> None:
    """Pooled scores against the labels; with `truth_dir` (synthetic sources) also against the
    exact truth on the same pixels, so the effect of label noise shows as `truth_*` metrics."""
    torch.set_num_threads(p.train.threads)
    model, ckpt = models.load_checkpoint(str(model_path))
    rows = [r for r in _read_split(split_csv) if r["role"] in p.evaluate.roles]
    fresh_dir(out_dir)
    fresh_dir(plots_dir / "overlays")
    in_aoi, scene, truth, per_obs = Histogram(), Histogram(), Histogram(), []
    for r in tqdm(rows, desc="evaluate", unit="obs"):
        obs_id = r["obs_id"]
        prob, image = _predict_obs(model, ckpt, p, images / f"{obs_id}.tif")
        label = read_mask(labels / f"{obs_id}.tif", image.grid)
        aoi = read_mask(aois / f"{obs_id}.tif", image.grid) > 0
        q = quantise(prob)
        write_cog(
            out_dir / f"{obs_id}.tif",
            q,
            image.grid,
            ["mine_probability"],
            {"source": image.tags.get("source", ""), "scale": "probability = value / 255"},
        )
        h = Histogram()
        h.add(q, label == 1, aoi & (label != labels_mod.IGNORE))
        in_aoi.merge(h)
        scene.add(q, label == 1, label != labels_mod.IGNORE)
        if truth_dir is not None and (truth_dir / f"{obs_id}.tif").exists():
            exact = read_mask(truth_dir / f"{obs_id}.tif", image.grid) == 1
            truth.add(q, exact, aoi & (label != labels_mod.IGNORE))
        per_obs.append(
            {"obs_id": obs_id, "cluster": r["cluster"], "ap": h.average_precision(), **h.at(p.predict.threshold)}
        )
        full = read_image(images / f"{obs_id}.tif")
        rgb = report.true_colour(full.data, full.bands)
        report.overlay(rgb, label, prob, obs_id, plots_dir / "overlays" / f"{obs_id}.png")
    out = {
        **in_aoi.summary(p.predict.threshold, "aoi_"),
        **scene.summary(p.predict.threshold, "scene_"),
        "observations": len(rows),
    }
    out["random_ap"] = out["aoi_mine_fraction"]  # AP of a random scorer = positive fraction
    if truth.pos.sum():
        out.update({k: v for k, v in truth.summary(p.predict.threshold, "truth_aoi_").items() if "pixels" not in k})
    write_json(metrics, round_metrics(out))
    precision, recall, thr = in_aoi.curve()
    lines = ["threshold,precision,recall"] + [f"{t:.4f},{pr:.5f},{rc:.5f}" for t, pr, rc in zip(thr, precision, recall)]
    write_text(plots_dir / "pr_curve.csv", "\n".join(lines) + "\n")
    lines = ["obs_id,cluster,ap,f1,precision,recall,iou"] + [
        f"{o['obs_id']},{o['cluster']},{o['ap']:.4f},{o['f1']:.4f},{o['precision']:.4f},{o['recall']:.4f},{o['iou']:.4f}"
        for o in per_obs
    ]
    write_text(plots_dir / "per_observation.csv", "\n".join(lines) + "\n")


def infer(
    p: Params, model_path: Path, images: Path, split_csv: Path, out_dir: Path, metrics: Path, report_path: Path
) -> None:
    torch.set_num_threads(p.train.threads)
    model, ckpt = models.load_checkpoint(str(model_path))
    rows = [r for r in _read_split(split_csv) if r["role"] == "infer"]
    fresh_dir(out_dir)
    entries, series, synthetic = [], defaultdict(list), False
    for r in tqdm(rows, desc="infer", unit="obs"):
        obs_id = r["obs_id"]
        prob, image = _predict_obs(model, ckpt, p, images / f"{obs_id}.tif")
        tags = {"source": image.tags.get("source", ""), "date": image.tags.get("date", "")}
        synthetic |= tags["source"] == "synthetic"
        write_cog(
            out_dir / f"{obs_id}.tif",
            quantise(prob),
            image.grid,
            ["mine_probability"],
            {**tags, "scale": "probability = value / 255"},
        )
        mask = (prob >= p.predict.threshold).astype(np.uint8)
        write_cog(out_dir / f"{obs_id}_mask.tif", mask, image.grid, ["mine"], tags)
        feats = polygons(
            prob,
            image.grid,
            p.predict.threshold,
            p.infer.min_area_ha,
            {"obs_id": obs_id, "site_id": r["site_id"], "date": tags["date"]},
        )
        write_text(out_dir / f"{obs_id}.geojson", json.dumps({"type": "FeatureCollection", "features": feats}) + "\n")
        area = float(sum(f["properties"]["area_ha"] for f in feats))
        series[r["site_id"]].append((tags["date"], area))
        entries.append(
            {
                "obs_id": obs_id,
                "site_id": r["site_id"],
                "date": tags["date"],
                "area_ha": area,
                "n_polygons": len(feats),
                "rgb": report.true_colour(image.data, image.bands),
                "prob": prob,
            }
        )
    lines = ["site_id,date,mined_area_ha"] + [f"{s},{d},{a:.3f}" for s in sorted(series) for d, a in sorted(series[s])]
    write_text(out_dir / "timeseries.csv", "\n".join(lines) + "\n")
    report.map_report(entries, {s: sorted(v) for s, v in series.items()}, synthetic, report_path)
    write_json(
        metrics,
        round_metrics(
            {
                "observations": len(entries),
                "polygons": sum(e["n_polygons"] for e in entries),
                "mined_area_ha": sum(e["area_ha"] for e in entries),
            },
            3,
        ),
    )
