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

    def at(self, threshold: float) -> dict[str, float]:
        """Precision, recall, F1 and IoU of `score >= threshold`."""
        level = int(np.ceil(threshold * (LEVELS - 1) - 1e-9))
        tp = int(self.pos[level:].sum())
        fp = int(self.neg[level:].sum())
        fn = int(self.pos[:level].sum())
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
        """The flat metrics written to metrics/*.json."""
        at = self.at(threshold)
        best, best_t = self.best_f1()
        total = int(self.pos.sum() + self.neg.sum())
        out = {
            "ap": self.average_precision(),
            "f1_at_0.5" if threshold == 0.5 else f"f1_at_{threshold}": at["f1"],
            "precision": at["precision"],
            "recall": at["recall"],
            "iou": at["iou"],
            "best_f1": best,
            "best_f1_threshold": best_t,
            "mine_fraction": int(self.pos.sum()) / max(total, 1),
            "pixels": total,
        }
        return {f"{prefix}{k}": v for k, v in out.items()}
