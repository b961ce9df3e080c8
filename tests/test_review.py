"""Review decisions: the Wilson interval, reading a decisions file, its counts, and its label files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import box, mapping

from sandmine import review
from sandmine.__main__ import main
from sandmine.core.config import LabelsParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import to_crs
from sandmine.core.schema import IGNORE, MINE, rasterize_row
from sandmine.sources.local import geojson_labels


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [  # Wilson 95 % intervals as published (e.g. Newcombe 1998, table I; statsmodels proportion_confint)
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_matches_known_intervals(k, n, lo, hi):
    got = review.wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_without_trials_or_with_impossible_counts():
    assert review.wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        review.wilson(3, 2)


def _feature(obs: str, verdict: str, x0: float, area_ha: float = 1.0, **extra) -> dict:
    """A decision on a 100 x 100 m square (UTM 44N, x0 m east of 500 km) as the map report downloads it."""
    square = to_crs(box(500_000 + x0, 2_799_800, 500_100 + x0, 2_799_900), "EPSG:32644", "EPSG:4326")
    props = {"class": review.VERDICT_CLASS[verdict], "confidence": "high", "verdict": verdict, "obs_id": obs,
             "date": "2026-04-10", "site_id": "s", "area_ha": area_ha, "mean_prob": 0.8,
             "decided_at": "2026-12-04T10:00:00Z", **extra}  # fmt: skip
    return {"type": "Feature", "properties": props, "geometry": mapping(square)}


def _decisions(path: Path, features: list[dict]) -> Path:
    doc = {"type": "FeatureCollection", review.FORMAT_MEMBER: {"format": 1, "report": "abc"}, "features": features}
    path.write_text(json.dumps(doc))
    return path


FEATURES = [
    _feature("a", "mine", 0, 2.0),
    _feature("a", "mine", 200),
    _feature("a", "not_mine", 400),
    _feature("a", "unsure", 600),
    _feature("a", "missed", 700, 0.5),
    _feature("b", "mine", 0),
    _feature("b", "unreviewed", 200),
]


def test_summarise_counts_verdicts_overall_and_per_observation():
    s = review.summarise(FEATURES)
    assert s.counts == Counter(mine=3, not_mine=1, unsure=1, missed=1, unreviewed=1)
    assert s.precision == 0.75 and s.interval == review.wilson(3, 4)
    assert s.by_obs["a"] == Counter(mine=2, not_mine=1, unsure=1, missed=1) and s.by_obs["b"]["unreviewed"] == 1
    assert s.hectares["mine"] == 4.0 and len(s.missed) == 1
    text = review.report(s, "d.geojson")
    assert "precision 0.750 (3 mine / 4 decided), Wilson 95 % CI 0.301–0.954" in text
    assert "by area 0.800 (4.0 / 5.0 ha)" in text and "1 unsure, 1 unreviewed" in text
    assert "missed mines drawn: 1 (0.50 ha)" in text


def test_report_without_decided_polygons_says_precision_is_undefined():
    text = review.report(review.summarise([_feature("a", "unsure", 0)]), "d")
    assert "precision: undefined" in text


def test_split_labels_gives_files_the_label_reader_takes_as_they_are(tmp_path, grid):
    files = review.split_labels(FEATURES, tmp_path / "labels")
    assert [f.name for f in files] == ["a.geojson", "b.geojson"]
    row = geojson_labels(files[0], "a")
    assert [a.cls for a in row.annotations] == ["mine", "mine", "not_mine", "ignore", "mine"]
    mask, feats = rasterize_row(row, grid, np.ones((64, 80), bool), LabelsParams())
    assert not row.problems
    # squares of 10 x 10 px at rows 10-19, columns 0, 20, 40, 60 and 70 (the missed mine)
    assert (mask[10:20, 0:10] == MINE).all() and (mask[10:20, 20:30] == MINE).all()
    assert (mask[10:20, 40:50] == 0).all() and (mask[10:20, 60:70] == IGNORE).all()
    assert (mask[10:20, 70:80] == MINE).all() and (mask == MINE).sum() == 300 and (mask == IGNORE).sum() == 100


def test_split_labels_refuses_an_obs_id_that_is_a_path(tmp_path):
    with pytest.raises(SandmineError, match="cannot name a label file"):
        review.split_labels([_feature("../x", "mine", 0)], tmp_path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"type": "FeatureCollection", "features": []}), "not a review decisions file"),
        (json.dumps([{"type": "Feature"}]), "not a review decisions file"),
        (json.dumps({"type": "FeatureCollection", "sandmine_review": {}, "features": [{"properties": {}}]}),
         "feature 0 has no verdict"),
    ],
)  # fmt: skip
def test_read_decisions_refuses_other_files(tmp_path, text, words):
    path = tmp_path / "d.geojson"
    path.write_text(text)
    with pytest.raises(SandmineError, match=words) as err:
        review.read_decisions(path)
    assert str(path) in str(err.value) and "Download decisions" in str(err.value)


def test_review_stats_cli_prints_precision_and_writes_labels(tmp_path, capsys):
    path = _decisions(tmp_path / "d.geojson", FEATURES)
    main(["review-stats", str(path), "--labels-dir", str(tmp_path / "reviewed")])
    out = capsys.readouterr().out
    assert "precision 0.750 (3 mine / 4 decided)" in out and "2 label file(s)" in out
    assert sorted(p.name for p in (tmp_path / "reviewed").iterdir()) == ["a.geojson", "b.geojson"]


def test_review_stats_cli_names_a_file_that_is_not_decisions(tmp_path, capsys):
    path = tmp_path / "mines.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(SystemExit) as exit_:
        main(["review-stats", str(path)])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "not a review decisions file" in err and "How to fix" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["review-stats", str(tmp_path / "missing.geojson")])
    assert "decisions file not found" in capsys.readouterr().err
