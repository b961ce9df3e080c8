"""How hard is the world? A per-pixel random forest against the pipeline's deep model.

Trains a random forest on pixels (bands + NDWI, NDVI, MNDWI) of the training observations in
data/split.csv, scores the held-out test observations within the AOI with the same pooled metrics
as the evaluate stage, and prints a table beside metrics/evaluate.json. Run after `dvc repro`:

    python bench/difficulty.py [--pixels 200000]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from sandmine.core.bands import S1, S2_L2A, to_model_units
from sandmine.core.metrics import Histogram, quantise
from sandmine.core.raster import read_image, read_mask
from sandmine.core.schema import IGNORE

BANDS = [*S2_L2A, *S1]


def features(path: Path) -> np.ndarray:
    """(N pixels, bands + 3 indices) float32."""
    img = read_image(path, BANDS)
    x = to_model_units(img.data, BANDS)
    b = {name: x[i] for i, name in enumerate(BANDS)}

    def nd(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return (a - c) / np.maximum(a + c, 1e-6)

    idx = np.stack([nd(b["B3"], b["B8"]), nd(b["B8"], b["B4"]), nd(b["B3"], b["B11"])])
    return np.concatenate([x, idx]).reshape(len(BANDS) + 3, -1).T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pixels", type=int, default=200_000, help="training pixels sampled")
    ap.add_argument("--root", type=Path, default=Path("."))
    args = ap.parse_args()
    root = args.root
    rows = list(csv.DictReader((root / "data/split.csv").open()))
    rng = np.random.default_rng(0)
    xs, ys = [], []
    train = [r["obs_id"] for r in rows if r["role"] == "train"]
    per_obs = args.pixels // len(train)
    for obs in train:
        f = features(root / f"data/images/{obs}.tif")
        label = read_mask(root / f"data/labels/{obs}.tif").ravel()
        aoi = read_mask(root / f"data/aoi/{obs}.tif").ravel() > 0
        keep = np.flatnonzero(aoi & (label != IGNORE))
        pick = rng.choice(keep, size=min(per_obs, keep.size), replace=False)
        xs.append(f[pick])
        ys.append(label[pick] == 1)
    start = time.perf_counter()
    rf = RandomForestClassifier(
        n_estimators=100, min_samples_leaf=5, n_jobs=2, random_state=0, class_weight="balanced_subsample"
    )
    rf.fit(np.concatenate(xs), np.concatenate(ys))
    fit_s = time.perf_counter() - start
    hist = Histogram()
    for obs in [r["obs_id"] for r in rows if r["role"] == "test"]:
        f = features(root / f"data/images/{obs}.tif")
        label = read_mask(root / f"data/labels/{obs}.tif").ravel()
        aoi = read_mask(root / f"data/aoi/{obs}.tif").ravel() > 0
        prob = rf.predict_proba(np.nan_to_num(f))[:, 1]
        hist.add(quantise(prob), label == 1, aoi & (label != IGNORE))
    rf_m = hist.summary(0.5)
    deep = json.loads((root / "metrics/evaluate.json").read_text())
    enc = "deep model (metrics/evaluate.json)"
    print(f"test observations: {sum(r['role'] == 'test' for r in rows)}; random-forest fit {fit_s:.0f} s")
    print("| model | AP | best F1 | F1 at 0.5 | IoU |\n|---|---|---|---|---|")
    print(f"| random (mine fraction) | {rf_m['mine_fraction']:.3f} | | | |")
    print(
        f"| per-pixel random forest | {rf_m['ap']:.3f} | {rf_m['best_f1']:.3f} | {rf_m['f1_at_0.5']:.3f} "
        f"| {rf_m['iou']:.3f} |"
    )
    print(
        f"| {enc} | {deep['aoi_ap']:.3f} | {deep['aoi_best_f1']:.3f} | {deep['aoi_f1_at_0.5']:.3f} "
        f"| {deep['aoi_iou']:.3f} |"
    )


if __name__ == "__main__":
    main()
