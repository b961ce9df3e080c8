"""Stage evaluate: stitched prediction on held-out observations, pooled scores, plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sandmine import calibration, report, scale
from sandmine.calibration import threshold_for
from sandmine.core.config import Params
from sandmine.core.files import fresh_dir, round_metrics, write_json, write_text
from sandmine.core.metrics import Histogram, Objects, level
from sandmine.core.raster import read_image, read_mask
from sandmine.steps.common import read_split
from sandmine.steps.scoring import read_scored

CLUSTER_KEYS = ("ap", "best_f1", "f1", "f1_at_0.5", "iou", "mine_fraction", "observations")


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
    exact truth on the same pixels, so the effect of label noise shows as `truth_*` metrics.

    Writes the probability COGs of the scored observations to `out_dir`; metrics in the AOI
    (`aoi_*`) and over the whole scene (`scene_*`), per cluster, object-level, and area error.
    """
    rows = [r for r in read_split(split_csv) if r["role"] in p.evaluate.roles]
    fresh_dir(out_dir)
    fresh_dir(plots_dir / "overlays")
    jobs = [(images / f"{r['obs_id']}.tif", out_dir / f"{r['obs_id']}.tif") for r in rows]
    scale.predict_observations(p.predict, model_path, jobs)
    thr = threshold_for(p.predict.threshold, p.predict.operating_point, model_path)
    in_aoi, scene, truth = Histogram(), Histogram(), Histogram()
    clusters: dict[str, Histogram] = defaultdict(Histogram)
    objects = None
    per_obs = []
    for r in tqdm(rows, desc="score", unit="obs"):
        obs_id = r["obs_id"]
        s = read_scored(obs_id, out_dir, images, labels, aois)
        grid, q, label, aoi, known = s.grid, s.q, s.label, s.aoi, s.known
        if objects is None:
            objects = Objects(p.evaluate.object_overlap, max(1, round(p.infer.min_area_ha / grid.pixel_area_ha)))
        h = Histogram()
        h.add(q, label == 1, aoi & known)
        in_aoi.merge(h)
        clusters[r["cluster"]].merge(h)
        scene.add(q, label == 1, known)
        if truth_dir is not None and (truth_dir / f"{obs_id}.tif").exists():
            exact = read_mask(truth_dir / f"{obs_id}.tif", grid) == 1
            truth.add(q, exact, aoi & known)
        pred = q >= level(thr)
        counts = objects.add(pred, label == 1, ~known)
        area_pred = float((pred & aoi & known).sum()) * grid.pixel_area_ha
        area_label = float(((label == 1) & aoi).sum()) * grid.pixel_area_ha
        per_obs.append(
            {
                "obs_id": obs_id,
                "cluster": r["cluster"],
                "ap": h.average_precision(),
                **h.at(thr),
                "objects_found": counts["found"],
                "objects_labelled": counts["truth"],
                "area_pred_ha": area_pred,
                "area_label_ha": area_label,
            }
        )
        image = read_image(images / f"{obs_id}.tif")
        rgb = report.true_colour(image.data, image.bands)
        report.overlay(rgb, label, q / 255.0, obs_id, plots_dir / "overlays" / f"{obs_id}.png")
    area_pred = sum(o["area_pred_ha"] for o in per_obs)
    area_label = sum(o["area_label_ha"] for o in per_obs)
    out: dict = {
        **in_aoi.summary(thr, "aoi_"),
        **scene.summary(thr, "scene_"),
        **(objects.summary() if objects else {}),
        "observations": len(rows),
        "area_pred_ha": area_pred,
        "area_label_ha": area_label,
        "area_error_ha": area_pred - area_label,
        "area_abs_error_ha_per_obs": float(np.mean([abs(o["area_pred_ha"] - o["area_label_ha"]) for o in per_obs]))
        if per_obs
        else float("nan"),
        "clusters": {
            f"c{c}": {k: v for k, v in h.summary(thr).items() if k in CLUSTER_KEYS} for c, h in sorted(clusters.items())
        },
        "aoi_ece": calibration.expected_calibration_error(in_aoi),
    }
    out["random_ap"] = out["aoi_mine_fraction"]  # AP of a random scorer = positive fraction
    if truth.pos.sum():
        out.update({k: v for k, v in truth.summary(thr, "truth_aoi_").items() if "pixels" not in k})
    write_json(metrics, round_metrics(out))
    precision, recall, thresholds = in_aoi.curve()
    lines = ["threshold,precision,recall"] + [
        f"{t:.4f},{pr:.5f},{rc:.5f}" for t, pr, rc in zip(thresholds, precision, recall)
    ]
    write_text(plots_dir / "pr_curve.csv", "\n".join(lines) + "\n")
    bins = calibration.reliability(in_aoi)
    lines = ["bin,predicted,observed,pixels"] + [
        f"{b['bin_lo']:.1f}-{b['bin_hi']:.1f},{b['predicted']:.5f},{b['observed']:.5f},{b['pixels']}" for b in bins
    ]
    write_text(plots_dir / "reliability.csv", "\n".join(lines) + "\n")
    report.reliability(bins, out["aoi_ece"], plots_dir / "reliability.png")
    cols = [
        "ap",
        "f1",
        "precision",
        "recall",
        "iou",
        "objects_found",
        "objects_labelled",
        "area_pred_ha",
        "area_label_ha",
    ]
    lines = ["obs_id,cluster," + ",".join(cols)] + [
        f"{o['obs_id']},{o['cluster']},"
        + ",".join(f"{o[c]:.4f}" if isinstance(o[c], float) else str(o[c]) for c in cols)
        for o in per_obs
    ]
    write_text(plots_dir / "per_observation.csv", "\n".join(lines) + "\n")
    lines = ["cluster,ap,f1,best_f1,iou"] + [
        f"c{c},{h.average_precision():.4f},{h.at(thr)['f1']:.4f},{h.best_f1()[0]:.4f},{h.at(thr)['iou']:.4f}"
        for c, h in sorted(clusters.items())
    ]
    write_text(plots_dir / "per_cluster.csv", "\n".join(lines) + "\n")
    report.confusion(*in_aoi.counts(thr), thr, plots_dir / "confusion.png")
