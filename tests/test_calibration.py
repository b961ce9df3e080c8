"""Operating threshold and calibration scores, on histograms with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sandmine.calibration import expected_calibration_error, operating_threshold, reliability
from sandmine.core.metrics import Histogram, quantise


def _hist(scores: list[float], truth: list[bool]) -> Histogram:
    h = Histogram()
    q = quantise(np.array(scores))
    h.add(q, np.array(truth), np.ones(len(scores), bool))
    return h


def test_operating_threshold_best_f1_separates_a_separable_set():
    h = _hist([0.1, 0.2, 0.3, 0.8, 0.9], [False, False, False, True, True])
    thr = operating_threshold(h, "best_f1")
    assert 0.3 < thr <= 0.8
    assert h.at(thr)["f1"] == 1.0


def test_operating_threshold_area_matches_the_labelled_pixel_count():
    # 3 mines among 10 pixels; an over-confident model scores 6 pixels above 0.5
    scores = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.3, 0.2, 0.1, 0.05]
    truth = [True, False, True, False, True, False, False, False, False, False]
    h = _hist(scores, truth)
    thr = operating_threshold(h, "area")
    tp, fp, _, _ = h.counts(thr)
    assert tp + fp == 3  # predicted pixels = labelled pixels
    assert 0.8 < thr <= 0.85


def test_operating_threshold_refuses_no_positives_and_unknown_methods():
    with pytest.raises(ValueError, match="no mine pixel"):
        operating_threshold(_hist([0.1, 0.2], [False, False]), "best_f1")
    with pytest.raises(ValueError, match="best_f1, area"):
        operating_threshold(_hist([0.1, 0.9], [False, True]), "median")


def test_reliability_and_ece_of_a_perfectly_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    calibrated = _hist(list(p), list(rng.uniform(0, 1, p.size) < p))
    assert expected_calibration_error(calibrated) < 0.01
    rows = reliability(calibrated)
    assert len(rows) == 10 and sum(r["pixels"] for r in rows) == p.size
    for r in rows:
        assert r["bin_lo"] <= r["predicted"] <= r["bin_hi"]
        assert r["observed"] == pytest.approx(r["predicted"], abs=0.02)
    # every pixel at 0.9 of which 30 % are mine: ECE = |0.3 - 0.9| (to the uint8 quantum)
    over = _hist([0.9] * 10, [True] * 3 + [False] * 7)
    assert expected_calibration_error(over) == pytest.approx(0.6, abs=1 / 255)
