"""Stage infer: monitoring outputs for observations with role `infer`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sandmine import models, report
from sandmine.config import Params
from sandmine.files import fresh_dir, round_metrics, write_json, write_text
from sandmine.metrics import quantise
from sandmine.raster import write_cog
from sandmine.steps.common import predict_obs, read_split
from sandmine.vectorize import polygons


def run(
    p: Params, model_path: Path, images: Path, split_csv: Path, out_dir: Path, metrics: Path, report_path: Path
) -> None:
    torch.set_num_threads(p.train.threads)
    model, ckpt = models.load_checkpoint(str(model_path))
    rows = [r for r in read_split(split_csv) if r["role"] == "infer"]
    fresh_dir(out_dir)
    entries, series, synthetic = [], defaultdict(list), False
    for r in tqdm(rows, desc="infer", unit="obs"):
        obs_id = r["obs_id"]
        prob, image = predict_obs(model, ckpt, p, images / f"{obs_id}.tif")
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
