"""Fitting the classical baselines with scikit-learn, then copying their trees into torch modules.

Kept apart from `sandmine.models.baselines` (the modules themselves) so that predicting stages do not
depend on training code. Scenes are read a strip or a tile at a time (`dataset.Source`): the forest's
training pixels are drawn from counts first, then only the strips holding them are read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sandmine import training
from sandmine.core.config import BaselineParams, TrainParams
from sandmine.core.schema import IGNORE
from sandmine.dataset import VAL, Source, WindowLoader, Windows
from sandmine.device import place, resolve_device
from sandmine.models.baselines import PixelForest, SuperpixelGBM, TreeEnsemble, segment_features, slic


def fit(
    name: str,
    train: Sequence[Source],
    val: Sequence[Source],
    channels: list[str],
    bp: BaselineParams,
    tp: TrainParams,
) -> tuple[nn.Module, dict[str, float]]:
    """Fit a baseline on training scenes (`dataset.Source`); validation AP on the same windows as
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
    windows = Windows(val, tp.val_windows, tp.window_px, tp.seed, VAL)
    ap = training.validation_ap(model, WindowLoader(windows, tp.batch_size, tp.workers).epoch(), tp.precision)
    return model, {"best_val_ap": ap, "best_epoch": 1, "epochs_run": 1, "train_mine_fraction": pos}


def _fit_forest(
    train: Sequence[Source], c: int, bp: BaselineParams, seed: int, rng: np.random.Generator, jobs: int
) -> nn.Module:
    from sklearn.ensemble import RandomForestClassifier

    # pass 1: usable pixels (AOI, labelled) per strip; pass 2: read only the strips holding the draws.
    # Strips are full width, so pixels are numbered in scene order, then row-major, as if all were in memory.
    counts = [[int((a & (y != IGNORE)).sum()) for _, (y, a) in s.mask_strips()] for s in train]
    flat = np.array([n for per in counts for n in per], np.int64)
    total = int(flat.sum())
    pick = np.sort(rng.choice(total, size=min(bp.pixels, total), replace=False))
    starts = np.concatenate([[0], np.cumsum(flat)])
    xs, ys, ws = [], [], []
    k = 0
    for s in train:
        for _, (img, lab, aoi, wt) in s.strips():
            lo, hi = starts[k], starts[k + 1]
            k += 1
            local = pick[(pick >= lo) & (pick < hi)] - lo
            if not local.size:
                continue
            keep = aoi & (lab != IGNORE)
            xs.append(img[:, keep].T[local])
            ys.append((lab[keep] == 1)[local])
            ws.append(wt[keep][local])
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    rf = RandomForestClassifier(
        n_estimators=bp.trees,
        max_depth=bp.depth,
        min_samples_leaf=5,
        class_weight="balanced_subsample",
        n_jobs=jobs,
        random_state=seed,
    )
    rf.fit(x, y, sample_weight=w)
    return PixelForest(c, TreeEnsemble.from_sklearn(list(rf.estimators_), "mean"))


def _fit_superpixels(train: Sequence[Source], c: int, bp: BaselineParams, seed: int, tile: int = 512) -> nn.Module:
    from sklearn.ensemble import GradientBoostingClassifier

    feats, ys, ws = [], [], []
    for s in tqdm(train, desc="superpixels", unit="scene", leave=False):
        h, w = s.shape
        for r in range(0, h, tile):
            for q in range(0, w, tile):
                if not s.aoi_any(r, min(r + tile, h), q, min(q + tile, w)):
                    continue
                img, lab, aoi, weight = s.read(r, q, min(tile, h - r), min(tile, w - q))
                seg = slic(img, bp.superpixel_px, bp.compactness, mask=aoi).ravel()  # 0: outside the AOI
                k = int(seg.max()) + 1
                n = np.bincount(seg, minlength=k)
                usable = aoi.ravel() & (lab.ravel() != IGNORE)
                n_use = np.bincount(seg, weights=usable, minlength=k)
                n_mine = np.bincount(seg, weights=usable & (lab.ravel() == 1), minlength=k)
                wt = weight.ravel().astype(np.float64)
                w_mean = np.bincount(seg, weights=wt, minlength=k) / np.maximum(n, 1)
                ok = n_use >= 0.5 * n
                ok[0] = False
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
