"""Known answers for every pixel metric, and agreement with scikit-learn's AP."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from sandmine.metrics import Histogram, quantise


def _hist(scores, truth):
    h = Histogram()
    s = np.asarray(scores, np.uint8)
    h.add(s, np.asarray(truth, bool), np.ones(s.shape, bool))
    return h


def test_average_precision_perfect_ranking_is_one():
    assert _hist([255, 200, 10, 0], [1, 1, 0, 0]).average_precision() == pytest.approx(1.0)


def test_average_precision_known_answer():
    # ranking: pos (255), neg (200), pos (100), neg (0): AP = 0.5*1 + 0.5*(2/3)
    h = _hist([255, 200, 100, 0], [1, 0, 1, 0])
    assert h.average_precision() == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_average_precision_matches_sklearn_with_ties(rng):
    truth = rng.uniform(size=5000) < 0.1
    prob = np.clip(truth * 0.3 + rng.uniform(size=5000) * 0.7, 0, 1)
    q = quantise(prob)
    h = _hist(q, truth)
    assert h.average_precision() == pytest.approx(average_precision_score(truth, q), abs=1e-9)


def test_at_threshold_known_counts():
    # scores >= 0.5 (level 128): tp=2, fp=1, fn=1
    h = _hist([255, 200, 130, 100, 0], [1, 1, 0, 1, 0])
    m = h.at(0.5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["iou"] == pytest.approx(2 / 4)


def test_best_f1_finds_separating_threshold():
    h = _hist([250, 240, 60, 50], [1, 1, 0, 0])
    best, thr = h.best_f1()
    assert best == pytest.approx(1.0)
    assert 60 / 255 < thr <= 240 / 255


def test_keep_mask_excludes_pixels_and_merge_pools():
    s = np.array([255, 255, 0], np.uint8)
    t = np.array([True, False, False])
    h = Histogram()
    h.add(s, t, np.array([True, False, True]))  # the false positive is ignored
    assert h.at(0.5)["precision"] == 1.0
    other = _hist([255], [False])
    h.merge(other)
    assert h.at(0.5)["precision"] == pytest.approx(0.5)


def test_no_positives_gives_nan_ap():
    assert np.isnan(_hist([10, 20], [0, 0]).average_precision())


def test_summary_random_scorer_ap_near_positive_fraction(rng):
    truth = rng.uniform(size=200_000) < 0.05
    h = _hist(quantise(rng.uniform(size=truth.size)), truth)
    s = h.summary(0.5)
    assert s["ap"] == pytest.approx(s["mine_fraction"], abs=0.01)
