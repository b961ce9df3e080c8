"""Known answers for every pixel metric, and agreement with scikit-learn's AP."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from sandmine.core.metrics import Histogram, quantise


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


def test_counts_match_at():
    h = _hist([255, 200, 128, 127, 0], [1, 0, 1, 1, 0])
    assert h.counts(0.5) == (2, 1, 1, 1)  # 128/255 >= 0.5 > 127/255
    assert h.at(0.5)["precision"] == pytest.approx(2 / 3)


def _objects(pred_boxes, truth_boxes, shape=(40, 40), overlap=0.5, min_pixels=1, ignore_boxes=()):
    from sandmine.core.metrics import Objects

    def paint(boxes):
        m = np.zeros(shape, bool)
        for r0, r1, c0, c1 in boxes:
            m[r0:r1, c0:c1] = True
        return m

    o = Objects(overlap, min_pixels)
    counts = o.add(paint(pred_boxes), paint(truth_boxes), paint(ignore_boxes))
    return o, counts


def test_objects_known_answer():
    # truth: A (10x10 at 0,0), B (4x4 at 20,20), C (4x4 at 30,0)
    # pred: covers 60 % of A; covers 25 % of B (plus 12 px off it); a false alarm far away
    truth = [(0, 10, 0, 10), (20, 24, 20, 24), (30, 34, 0, 4)]
    pred = [(0, 6, 0, 10), (20, 21, 20, 24), (21, 24, 25, 29), (30, 33, 30, 33)]
    o, counts = _objects(pred, truth)
    assert counts == {"truth": 3, "found": 1, "predicted": 4, "correct": 2}
    s = o.summary()
    assert s["object_recall"] == pytest.approx(1 / 3)
    assert s["object_precision"] == pytest.approx(2 / 4)
    assert s["object_f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))


def test_objects_imprecise_boundary_still_found():
    # a prediction shifted by 2 px: pixel IoU 0.64, but the mine is found and the prediction right
    o, counts = _objects([(2, 12, 0, 10)], [(0, 10, 0, 10)], overlap=0.3)
    assert counts["found"] == 1 and counts["correct"] == 1


def test_objects_small_predictions_dropped_and_ignore_not_blamed():
    o, counts = _objects([(0, 1, 0, 2), (10, 15, 10, 15)], [], min_pixels=4, ignore_boxes=[(10, 15, 10, 15)])
    assert counts == {"truth": 0, "found": 0, "predicted": 0, "correct": 0}  # ignored pixels removed first
    o, counts = _objects([(0, 1, 0, 2), (10, 15, 10, 15)], [], min_pixels=4)
    assert counts["predicted"] == 1 and counts["correct"] == 0
    assert np.isnan(o.summary()["object_recall"])  # no labelled mine: recall undefined, not 0 or 1


def test_objects_mapping_unit_applies_to_labelled_mines_too():
    # a 10x10 mine found, a 1x3 sliver (below the 4 px unit) missed: recall 1 (mappable), recall_all 1/2
    o, counts = _objects([(0, 10, 0, 10)], [(0, 10, 0, 10), (30, 31, 30, 33)], min_pixels=4)
    assert counts == {"truth": 1, "found": 1, "predicted": 1, "correct": 1}
    s = o.summary()
    assert s["object_recall"] == 1.0 and s["object_recall_all"] == pytest.approx(0.5)
    assert s["object_labelled_below_mapping_unit"] == 1
    # a found sliver counts in recall_all only
    o, _ = _objects([(30, 31, 30, 33)], [(30, 31, 30, 33)], min_pixels=1)
    assert o.summary()["object_recall_all"] == 1.0
