"""Classical baselines as torch modules: a per-pixel random forest and superpixels + gradient boosting.

Earlier mine detectors used a per-pixel random forest on bands and spectral indices (DataKind) and
superpixels classified by gradient boosting. Both are fitted with scikit-learn, then their trees
are copied into tensors (feature, threshold, children, leaf value per node), so the checkpoint is
a plain state dict that loads with `weights_only=True`, and the model predicts through the same
stitched inference as the deep models (`forward` returns logits).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

PIXEL_CHUNK = 65536


class TreeEnsemble(nn.Module):
    """Trees as padded arrays (n_trees, n_nodes); leaves point to themselves.

    `mode` "mean": the score is the mean leaf value (a forest's probability);
    "sum": init + sum of leaf values (gradient boosting's raw log-odds, learning rate folded in).
    """

    feature: torch.Tensor
    threshold: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    value: torch.Tensor
    init: torch.Tensor

    def __init__(self, n_trees: int, n_nodes: int, depth: int, mode: str):
        super().__init__()
        self.depth, self.mode = depth, mode
        self.register_buffer("feature", torch.zeros(n_trees, n_nodes, dtype=torch.int32))
        self.register_buffer("threshold", torch.zeros(n_trees, n_nodes))
        self.register_buffer("left", torch.zeros(n_trees, n_nodes, dtype=torch.int32))
        self.register_buffer("right", torch.zeros(n_trees, n_nodes, dtype=torch.int32))
        self.register_buffer("value", torch.zeros(n_trees, n_nodes))
        self.register_buffer("init", torch.zeros(()))

    @classmethod
    def from_sklearn(cls, trees: list[Any], mode: str, scale: float = 1.0, init: float = 0.0) -> TreeEnsemble:
        """Copy fitted scikit-learn trees (`estimator.tree_`); classifier leaves give P(class 1)."""
        n_nodes = max(t.tree_.node_count for t in trees)
        depth = max(t.tree_.max_depth for t in trees)
        out = cls(len(trees), n_nodes, depth, mode)
        for i, t in enumerate(trees):
            tr = t.tree_
            n = tr.node_count
            ids = np.arange(n)
            leaf = tr.children_left < 0
            out.feature[i, :n] = torch.from_numpy(np.where(leaf, 0, tr.feature).astype(np.int32))
            out.threshold[i, :n] = torch.from_numpy(tr.threshold.astype(np.float32))
            out.left[i, :n] = torch.from_numpy(np.where(leaf, ids, tr.children_left).astype(np.int32))
            out.right[i, :n] = torch.from_numpy(np.where(leaf, ids, tr.children_right).astype(np.int32))
            v = tr.value[:, 0, :]
            leafval = v[:, 1] / np.maximum(v.sum(1), 1e-12) if v.shape[1] == 2 else v[:, 0]
            out.value[i, :n] = torch.from_numpy((leafval * scale).astype(np.float32))
        out.init.fill_(init)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F) features -> (N,) scores."""
        idx = {k: getattr(self, k).long() for k in ("feature", "left", "right")}
        out = torch.empty(x.shape[0], device=x.device)
        for a in range(0, x.shape[0], PIXEL_CHUNK):
            xt = x[a : a + PIXEL_CHUNK].t().contiguous()  # (F, n)
            node = torch.zeros(self.feature.shape[0], xt.shape[1], dtype=torch.long, device=x.device)
            for _ in range(self.depth):
                xv = torch.gather(xt, 0, idx["feature"].gather(1, node))
                go_left = xv <= self.threshold.gather(1, node)
                node = torch.where(go_left, idx["left"].gather(1, node), idx["right"].gather(1, node))
            v = self.value.gather(1, node)
            out[a : a + PIXEL_CHUNK] = v.mean(0) if self.mode == "mean" else self.init + v.sum(0)
        return out


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


class PixelForest(nn.Module):
    """Random forest on each pixel's channels (bands and index channels, standardised)."""

    trees: TreeEnsemble

    def __init__(self, n_channels: int, trees: TreeEnsemble):
        super().__init__()
        self.n_channels, self.trees = n_channels, trees

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.trees(x.permute(0, 2, 3, 1).reshape(-1, c))
        return _logit(p).view(b, 1, h, w)


def slic(image: np.ndarray, step: int, compactness: float, iters: int = 5) -> np.ndarray:
    """SLIC superpixels (Achanta et al. 2012) of a (C, H, W) standardised image -> (H, W) int32 ids.

    Centres start on a grid of `step` px; each pixel joins the nearest of the 9 centres around its
    grid cell by distance mean((colour difference)^2) + (compactness / step)^2 * (pixel distance)^2.
    Vectorised over pixels; deterministic.
    """
    c, h, w = image.shape
    ny, nx = max(1, round(h / step)), max(1, round(w / step))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy = ((np.arange(ny) + 0.5) * h / ny).astype(np.float32).repeat(nx)
    cx = np.tile(((np.arange(nx) + 0.5) * w / nx).astype(np.float32), ny)
    col = image[:, cy.astype(int), cx.astype(int)].T.copy()  # (K, C)
    ry = np.minimum((yy * ny / h).astype(int), ny - 1)
    rx = np.minimum((xx * nx / w).astype(int), nx - 1)
    flat = image.reshape(c, -1)
    k_total = ny * nx
    labels = np.zeros((h, w), np.int64)
    spatial = (compactness / step) ** 2
    for _ in range(iters):
        best = np.full((h, w), np.inf, np.float32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                k = np.clip(ry + dy, 0, ny - 1) * nx + np.clip(rx + dx, 0, nx - 1)
                d = ((image - col[k].transpose(2, 0, 1)) ** 2).mean(0)
                d += spatial * ((yy - cy[k]) ** 2 + (xx - cx[k]) ** 2)
                better = d < best
                best[better], labels[better] = d[better], k[better]
        counts = np.bincount(labels.ravel(), minlength=k_total)
        has = counts > 0
        for ch in range(c):
            s = np.bincount(labels.ravel(), weights=flat[ch], minlength=k_total)
            col[has, ch] = s[has] / counts[has]
        cy[has] = np.bincount(labels.ravel(), weights=yy.ravel(), minlength=k_total)[has] / counts[has]
        cx[has] = np.bincount(labels.ravel(), weights=xx.ravel(), minlength=k_total)[has] / counts[has]
    return np.unique(labels, return_inverse=True)[1].reshape(h, w).astype(np.int32)


def segment_features(image: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """(K, 2C + 1) per superpixel: mean and standard deviation of each channel, log pixel count."""
    c = image.shape[0]
    ids = seg.ravel()
    k = int(ids.max()) + 1
    n = np.bincount(ids, minlength=k).astype(np.float64)
    flat = image.reshape(c, -1).astype(np.float64)
    mean = np.stack([np.bincount(ids, weights=flat[i], minlength=k) for i in range(c)], 1) / np.maximum(n, 1)[:, None]
    sq = (
        np.stack([np.bincount(ids, weights=flat[i] ** 2, minlength=k) for i in range(c)], 1) / np.maximum(n, 1)[:, None]
    )
    sd = np.sqrt(np.maximum(sq - mean**2, 0))
    return np.concatenate([mean, sd, np.log1p(n)[:, None]], 1).astype(np.float32)


class SuperpixelGBM(nn.Module):
    """SLIC superpixels of each window, classified by gradient-boosted trees on their statistics."""

    trees: TreeEnsemble

    def __init__(self, n_channels: int, trees: TreeEnsemble, step: int, compactness: float):
        super().__init__()
        self.n_channels, self.trees, self.step, self.compactness = n_channels, trees, step, compactness

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)
        for i, img in enumerate(x.detach().float().cpu().numpy()):  # superpixels on the CPU, trees on x's device
            seg = slic(img, self.step, self.compactness)
            score = self.trees(torch.from_numpy(segment_features(img, seg)).to(x.device))
            out[i, 0] = score[torch.from_numpy(seg).long().to(x.device)]
        return out


def build(name: str, channels: list[str], **shape: Any) -> nn.Module:
    """An empty baseline of the shape recorded in a checkpoint (`load_state_dict` fills it)."""
    trees = TreeEnsemble(shape["n_trees"], shape["n_nodes"], shape["depth"], shape["mode"])
    if name == "random_forest":
        return PixelForest(len(channels), trees)
    return SuperpixelGBM(len(channels), trees, shape["step"], shape["compactness"])


def shape_of(model: nn.Module) -> dict[str, Any]:
    """What `build` needs to rebuild `model` before loading its state dict."""
    t: TreeEnsemble = model.trees  # type: ignore[assignment]
    out: dict[str, Any] = {
        "n_trees": t.feature.shape[0],
        "n_nodes": t.feature.shape[1],
        "depth": t.depth,
        "mode": t.mode,
    }
    if isinstance(model, SuperpixelGBM):
        out.update(step=model.step, compactness=model.compactness)
    return out
