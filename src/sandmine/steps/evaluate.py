"""Stage evaluate: stitched prediction on held-out observations, pooled scores, plots."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from sandmine import labels as labels_mod
from sandmine import models, report
from sandmine.config import Params
from sandmine.files import fresh_dir, round_metrics, write_json, write_text
from sandmine.metrics import Histogram, quantise
from sandmine.raster import read_image, read_mask, write_cog
from sandmine.steps.common import predict_obs, read_split


def run(
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
    rows = [r for r in read_split(split_csv) if r["role"] in p.evaluate.roles]
    fresh_dir(out_dir)
    fresh_dir(plots_dir / "overlays")
    in_aoi, scene, truth, per_obs = Histogram(), Histogram(), Histogram(), []
    for r in tqdm(rows, desc="evaluate", unit="obs"):
        obs_id = r["obs_id"]
        prob, image = predict_obs(model, ckpt, p, images / f"{obs_id}.tif")
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
