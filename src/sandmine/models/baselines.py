"""Classical baselines as torch modules: a per-pixel random forest and superpixels + gradient boosting.

Earlier mine detectors used a per-pixel random forest on bands and spectral indices (DataKind) and
superpixels classified by gradient boosting. Both are fitted with scikit-learn, then their trees
are copied into tensors (feature, threshold, children, leaf value per node), so the checkpoint is
a plain state dict that loads with `weights_only=True`, and the model predicts through the same
stitched inference as the deep models (`forward` returns logits).
"""

from __future__ import annotations

import math
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
        out = x.new_empty(x.shape[0])  # on the input's device, in its dtype
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


def slic(image: np.ndarray, step: int, compactness: float, mask: np.ndarray | None = None) -> np.ndarray:
    """SLIC superpixels (Achanta et al. 2012, scikit-image's) of a (C, H, W) standardised image -> (H, W) int32.

    About one superpixel per `step` x `step` px of `mask` (all pixels without one); each is one
    4-connected piece (`enforce_connectivity`), numbered 1…K; pixels outside `mask` are 0. The
    distance is mean((channel difference)^2) + (compactness / step)^2 * (pixel distance)^2 in
    standardised units: scikit-image sums over channels of the image rescaled to [0, 1], so it
    gets compactness * sqrt(C) / (value range) to weigh space the same.
    """
    from skimage.segmentation import slic as skimage_slic

    c, h, w = image.shape
    inside = np.ones((h, w), bool) if mask is None else mask.astype(bool)
    if not inside.any():
        return np.zeros((h, w), np.int32)
    values = image[:, inside]
    span = float(values.max() - values.min()) or 1.0
    seg = skimage_slic(
        image,
        n_segments=max(1, round(int(inside.sum()) / step**2)),
        compactness=compactness * math.sqrt(c) / span,
        channel_axis=0,
        convert2lab=False,
        enforce_connectivity=True,
        mask=mask,
        start_label=1,
    )
    return seg.astype(np.int32)


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
    """SLIC superpixels of each window, classified by gradient-boosted trees on their statistics.

    Fitting segments within the AOI (`mask`); a prediction window knows no AOI, so its superpixels
    cover it all (scores outside the AOI are not evaluated).
    """

    trees: TreeEnsemble

    def __init__(self, n_channels: int, trees: TreeEnsemble, step: int, compactness: float):
        super().__init__()
        self.n_channels, self.trees, self.step, self.compactness = n_channels, trees, step, compactness

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3])
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
