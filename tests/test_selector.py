"""The observation selector: known answers for the pair it chooses, and its Earth Engine query."""

from unittest import mock

import pytest

from sandmine.core.errors import SandmineError
from sandmine.sources.selector import Candidate, candidates_expression, choose, from_features, rows

POST = [
    Candidate("2025-10-20", 0.50, 0.30, 0.10),  # cloudy: never chosen
    Candidate("2025-11-05", 0.05, 0.40, 0.20),
    Candidate("2025-11-15", 0.10, 0.45, 0.25),
]
DRY = [
    Candidate("2026-03-30", 0.00, 0.35, 0.15),
    Candidate("2026-04-10", 0.02, 0.20, -0.05),  # the most change from any clear post-monsoon date
]


def test_chooses_clear_dates_with_the_greatest_change():
    a, b = choose("son_a", POST, DRY)
    # |0.45-0.20| + |0.25+0.05| = 0.55 beats 0.40-0.20 + 0.20+0.05 = 0.45
    assert (a.date, b.date) == ("2025-11-15", "2026-04-10")
    assert rows("son_a", (a, b)) == ["son_a_2025-11-15,son_a,2025-11-15,labelled",
                                     "son_a_2026-04-10,son_a,2026-04-10,labelled"]  # fmt: skip


def test_ties_go_to_the_clearer_pair():
    post = [Candidate("2025-11-01", 0.15, 0.4, 0.2), Candidate("2025-11-11", 0.01, 0.4, 0.2)]
    dry = [Candidate("2026-04-01", 0.0, 0.2, 0.0)]
    assert choose("x", post, dry)[0].date == "2025-11-11"


def test_no_clear_date_is_named():
    with pytest.raises(SandmineError, match=r"site 'son_a': no date in the second window .* least cloudy 60%"):
        choose("son_a", POST, [Candidate("2026-04-01", 0.6, 0, 0)])


def test_features_to_candidates_drop_dates_without_clear_pixels():
    fc = {"features": [
        {"properties": {"date": "2026-04-10", "cloud": 0.02, "ndvi": 0.2, "mndwi": -0.05}},
        {"properties": {"date": "2026-04-05", "cloud": 1.0, "ndvi": None, "mndwi": None}},
    ]}  # fmt: skip
    assert from_features(fc) == [Candidate("2026-04-10", 0.02, 0.2, -0.05)]


def test_earth_engine_query_builds_offline():
    import ee
    import ee.apitestcase

    with (
        mock.patch.object(ee.data, "_install_cloud_api_resource", lambda: None),
        mock.patch.object(ee.data, "getAlgorithms", ee.apitestcase.GetAlgorithms),
    ):
        ee.Initialize(None, "", project="test")
    expr = candidates_expression([84.16, 24.88, 84.21, 24.92], "2025-10-01", "2025-12-31").serialize()
    for needle in ("COPERNICUS/S2_SR_HARMONIZED", "cs_cdf", '"B8"', '"B11"', "2025-10-01", "YYYY-MM-dd"):
        assert needle in expr, needle


def test_select_observations_for_every_site(tiny_inputs):
    from sandmine.core.sites import read_sites
    from sandmine.sources.selector import select_observations

    sites = read_sites(tiny_inputs[0])
    calls = []

    def fetch(bounds, start, end):
        calls.append((bounds, start, end))
        return POST if start.startswith("2025") else DRY

    lines = select_observations(sites, ("2025-10-01", "2025-12-31"), ("2026-03-01", "2026-05-31"), 0.2, fetch)
    assert lines[0] == "obs_id,site_id,date,role" and len(lines) == 1 + 2 * len(sites)
    assert "son_a_2026-04-10,son_a,2026-04-10,labelled" in lines
    assert len(calls) == 2 * len(sites)
