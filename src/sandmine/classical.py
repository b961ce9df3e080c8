"""Fitting the classical baselines with scikit-learn, then copying their trees into torch modules.

Kept apart from `sandmine.models.baselines` (the modules themselves) so that predicting stages do not
depend on training code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sandmine import training
from sandmine.config import BaselineParams, TrainParams
from sandmine.device import place, resolve_device
from sandmine.labels import IGNORE
from sandmine.models.baselines import PixelForest, SuperpixelGBM, TreeEnsemble, segment_features, slic
from sandmine.windows import sample_centres


def fit(
    name: str,
    train: list[training.Scene],
    val: list[training.Scene],
    channels: list[str],
    bp: BaselineParams,
    tp: TrainParams,
) -> tuple[nn.Module, dict[str, float]]:
    """Fit a baseline on training scenes (`training.Scene`); validation AP on the same windows as
    the deep models. Loss weights of annotation confidence become sample weights.

    The trees are fitted on the CPU (scikit-learn); the fitted model predicts on `tp.device`, where it
    is returned."""
    rng = np.random.default_rng(tp.seed)
    pos, _ = training.positive_weight(train)
    if name == "random_forest":
        model: nn.Module = _fit_forest(train, len(channels), bp, tp.seed, rng, tp.threads)
    else:
        model = _fit_superpixels(train, len(channels), bp, tp.seed)
    model = place(model, resolve_device(tp.device, "params.yaml: train.device"))
    vx, vy, va, _ = training._windows(
        val,
        sample_centres([s.aoi for s in val], tp.val_windows, np.random.default_rng(tp.seed + 1)),
        tp.window_px,
    )
    ap = training.validation_ap(model, vx, vy, va, tp.batch_size, tp.precision)
    return model, {"best_val_ap": ap, "best_epoch": 1, "epochs_run": 1, "train_mine_fraction": pos}


def _fit_forest(
    train: list[training.Scene], c: int, bp: BaselineParams, seed: int, rng: np.random.Generator, jobs: int
) -> nn.Module:
    from sklearn.ensemble import RandomForestClassifier

    xs, ys, ws = [], [], []
    for s in train:
        keep = s.aoi & (s.label != IGNORE)
        xs.append(s.image[:, keep].T)
        ys.append(s.label[keep] == 1)
        ws.append(np.ones(int(keep.sum()), np.float32) if s.weight is None else s.weight[keep])
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    pick = np.sort(rng.choice(len(y), size=min(bp.pixels, len(y)), replace=False))
    rf = RandomForestClassifier(
        n_estimators=bp.trees,
        max_depth=bp.depth,
        min_samples_leaf=5,
        class_weight="balanced_subsample",
        n_jobs=jobs,
        random_state=seed,
    )
    rf.fit(x[pick], y[pick], sample_weight=w[pick])
    return PixelForest(c, TreeEnsemble.from_sklearn(list(rf.estimators_), "mean"))


def _fit_superpixels(train: list[training.Scene], c: int, bp: BaselineParams, seed: int, tile: int = 512) -> nn.Module:
    from sklearn.ensemble import GradientBoostingClassifier

    feats, ys, ws = [], [], []
    for s in tqdm(train, desc="superpixels", unit="scene", leave=False):
        h, w = s.label.shape
        for r in range(0, h, tile):
            for q in range(0, w, tile):
                lab, aoi = s.label[r : r + tile, q : q + tile], s.aoi[r : r + tile, q : q + tile]
                if not aoi.any():
                    continue
                img = s.image[:, r : r + tile, q : q + tile]
                seg = slic(img, bp.superpixel_px, bp.compactness).ravel()
                k = int(seg.max()) + 1
                n = np.bincount(seg, minlength=k)
                usable = aoi.ravel() & (lab.ravel() != IGNORE)
                n_use = np.bincount(seg, weights=usable, minlength=k)
                n_mine = np.bincount(seg, weights=usable & (lab.ravel() == 1), minlength=k)
                wt = np.ones(seg.size) if s.weight is None else s.weight[r : r + tile, q : q + tile].ravel()
                w_mean = np.bincount(seg, weights=wt, minlength=k) / np.maximum(n, 1)
                ok = n_use >= 0.5 * n
                feats.append(segment_features(img, seg.reshape(lab.shape))[ok])
                ys.append((n_mine[ok] / np.maximum(n_use[ok], 1)) >= 0.5)
                ws.append(w_mean[ok])
    x, y, sw = np.concatenate(feats), np.concatenate(ys), np.concatenate(ws)
    gb = GradientBoostingClassifier(
        n_estimators=bp.boost_trees,
        max_depth=bp.boost_depth,
        learning_rate=bp.boost_lr,
        subsample=0.8,
        random_state=seed,
    )
    pos = max(float(y.mean()), 1e-6)
    gb.fit(x, y, sample_weight=sw * np.where(y, (1 - pos) / pos, 1.0))  # balanced, as the forest
    trees = [t[0] for t in gb.estimators_]
    ens = TreeEnsemble.from_sklearn(trees, "sum", scale=bp.boost_lr)
    raw = gb.decision_function(x[:1])[0]
    ens.init.fill_(float(raw - ens(torch.from_numpy(x[:1]))[0]))  # the prior log-odds gradient boosting starts from
    return SuperpixelGBM(c, ens, bp.superpixel_px, bp.compactness)
