"""Pixel scores pooled over observations, from score histograms (exact for uint8 scores).

Scores are probabilities quantised to 256 levels (as stored in the prediction COGs); counting
positives and negatives per level makes pooling over any number of pixels cheap and exact.
"""

from __future__ import annotations

import numpy as np

LEVELS = 256


def quantise(prob: np.ndarray) -> np.ndarray:
    """Probabilities 0–1 to uint8 levels 0–255."""
    return np.clip(np.rint(prob * (LEVELS - 1)), 0, LEVELS - 1).astype(np.uint8)


class Histogram:
    """Counts of positive and negative pixels per score level; add observations, then score."""

    def __init__(self) -> None:
        self.pos = np.zeros(LEVELS, np.int64)
        self.neg = np.zeros(LEVELS, np.int64)

    def add(self, score_u8: np.ndarray, truth: np.ndarray, keep: np.ndarray) -> None:
        """Add pixels where `keep` is true; `truth` is bool (mine)."""
        s, t = score_u8[keep], truth[keep]
        self.pos += np.bincount(s[t], minlength=LEVELS)
        self.neg += np.bincount(s[~t], minlength=LEVELS)

    def merge(self, other: Histogram) -> None:
        self.pos += other.pos
        self.neg += other.neg

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, threshold) for each level, highest threshold first."""
        tp = np.cumsum(self.pos[::-1])
        fp = np.cumsum(self.neg[::-1])
        n_pos = max(int(self.pos.sum()), 1)
        precision = tp / np.maximum(tp + fp, 1)
        recall = tp / n_pos
        thresholds = np.arange(LEVELS - 1, -1, -1) / (LEVELS - 1)
        return precision, recall, thresholds

    def average_precision(self) -> float:
        """AP = Σ (R_k − R_{k−1}) P_k over levels (as scikit-learn computes it, ties grouped)."""
        if self.pos.sum() == 0:
            return float("nan")
        precision, recall, _ = self.curve()
        seen = (self.pos[::-1] + self.neg[::-1]) > 0
        p, r = precision[seen], recall[seen]
        return float(np.sum(np.diff(np.r_[0.0, r]) * p))

    def counts(self, threshold: float) -> tuple[int, int, int, int]:
        """(tp, fp, fn, tn) of `score >= threshold`."""
        k = level(threshold)
        return (int(self.pos[k:].sum()), int(self.neg[k:].sum()), int(self.pos[:k].sum()), int(self.neg[:k].sum()))

    def at(self, threshold: float) -> dict[str, float]:
        """Precision, recall, F1 and IoU of `score >= threshold`."""
        tp, fp, fn, _ = self.counts(threshold)
        precision = tp / max(tp + fp, 1)
        recall = tp / max(tp + fn, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        iou = tp / max(tp + fp + fn, 1)
        return {"precision": precision, "recall": recall, "f1": f1, "iou": iou}

    def best_f1(self) -> tuple[float, float]:
        """The highest F1 over thresholds, and its threshold."""
        precision, recall, thresholds = self.curve()
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        k = int(np.argmax(f1))
        return float(f1[k]), float(thresholds[k])

    def summary(self, threshold: float, prefix: str = "") -> dict[str, float]:
        """The flat metrics written to metrics/*.json; precision, recall, F1 and IoU at `threshold`."""
        at = self.at(threshold)
        best, best_t = self.best_f1()
        total = int(self.pos.sum() + self.neg.sum())
        out = {
            "ap": self.average_precision(),
            "threshold": threshold,
            "f1": at["f1"],  # at the operating threshold
            "f1_at_0.5": self.at(0.5)["f1"],  # the uncalibrated cut, for comparison with earlier runs
            "precision": at["precision"],
            "recall": at["recall"],
            "iou": at["iou"],
            "best_f1": best,
            "best_f1_threshold": best_t,
            "mine_fraction": int(self.pos.sum()) / max(total, 1),
            "pixels": total,
        }
        return {f"{prefix}{k}": v for k, v in out.items()}


def level(threshold: float) -> int:
    """The lowest uint8 score level that counts as `score >= threshold`."""
    return int(np.ceil(threshold * (LEVELS - 1) - 1e-9))


class Objects:
    """Object-level detection: connected mines (8-neighbours) rather than pixels.

    A labelled mine is found when predicted pixels cover at least `overlap` of its area; a
    predicted object is correct when at least `overlap` of it lies on labelled mine (or on
    ignore pixels, which no prediction is blamed for). `min_pixels` is the map's minimum
    mapping unit, applied to both sides: predicted objects smaller than it are dropped first, as
    the polygons are, and labelled mines smaller than it (slivers, fragments cut by the scene
    edge or by ignore pixels) are not counted for recall, since no map with that unit can show
    them; `recall_all` counts them too. Pixel metrics punish imprecise boundaries; these count
    what a user of the map sees: which mines were found.
    """

    def __init__(self, overlap: float, min_pixels: int = 1) -> None:
        self.overlap = overlap
        self.min_pixels = min_pixels
        self.truth = self.found = self.predicted = self.correct = 0
        self.truth_all = self.found_all = 0  # labelled mines below the mapping unit included

    def add(self, pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None) -> dict[str, int]:
        """Count one observation's objects; returns its counts. All arrays (H, W) bool."""
        from scipy import ndimage

        eight = np.ones((3, 3), bool)
        ignore = np.zeros_like(truth) if ignore is None else ignore
        pred = pred & ~ignore
        plab, n_pred = ndimage.label(pred, eight)
        if n_pred:
            sizes = np.bincount(plab.ravel(), minlength=n_pred + 1)
            small = sizes < self.min_pixels
            small[0] = False
            pred = pred & ~small[plab]
            plab, n_pred = ndimage.label(pred, eight)
        tlab, n_all = ndimage.label(truth, eight)
        found = correct = found_all = n_truth = 0
        if n_all:
            hit = np.asarray(ndimage.mean(pred, tlab, np.arange(1, n_all + 1))) >= self.overlap - 1e-12
            mappable = np.bincount(tlab.ravel(), minlength=n_all + 1)[1:] >= self.min_pixels
            found_all, n_truth, found = int(hit.sum()), int(mappable.sum()), int((hit & mappable).sum())
        if n_pred:
            on_mine = ndimage.mean(truth | ignore, plab, np.arange(1, n_pred + 1))
            correct = int(np.sum(np.asarray(on_mine) >= self.overlap - 1e-12))
        self.truth += n_truth
        self.found += found
        self.truth_all += n_all
        self.found_all += found_all
        self.predicted += n_pred
        self.correct += correct
        return {"truth": n_truth, "found": found, "predicted": n_pred, "correct": correct}

    def summary(self, prefix: str = "object_") -> dict[str, float]:
        precision = self.correct / self.predicted if self.predicted else float("nan")
        recall = self.found / self.truth if self.truth else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        out = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "labelled": self.truth,
            "predicted": self.predicted,
            "recall_all": self.found_all / self.truth_all if self.truth_all else float("nan"),
            "labelled_below_mapping_unit": self.truth_all - self.truth,
        }
        return {f"{prefix}{k}": v for k, v in out.items()}
