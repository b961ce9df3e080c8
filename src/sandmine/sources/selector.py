"""Observation selector: per site, two dates (one per season window) with little cloud and the
greatest change of landscape between them, as rows of `data/observations.csv`.

The prior system chose its two dates per site this way: a clear post-monsoon date and a clear
dry-season date whose difference shows the most change. `choose` is pure (tested with known
answers); `candidates` asks Earth Engine for the per-date cloud fraction and index means.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from sandmine.core.errors import SandmineError


@dataclass(frozen=True)
class Candidate:
    """One acquisition date of a site: its cloud fraction and mean spectral indices."""

    date: str
    cloud: float  # fraction of the site that is cloudy (0–1)
    ndvi: float
    mndwi: float


def change(a: Candidate, b: Candidate) -> float:
    """How much the landscape changed between two dates: |ΔNDVI| + |ΔMNDWI| of site means."""
    return abs(a.ndvi - b.ndvi) + abs(a.mndwi - b.mndwi)


def choose(
    site_id: str, first: list[Candidate], second: list[Candidate], max_cloud: float = 0.2
) -> tuple[Candidate, Candidate]:
    """The pair (one date per window) with at most `max_cloud` cloud and the greatest change;
    ties go to the clearer pair, then the earlier dates.

    Raises:
        SandmineError: a window has no date clear enough (names the site and the window).
    """
    clear1 = [c for c in first if c.cloud <= max_cloud]
    clear2 = [c for c in second if c.cloud <= max_cloud]
    for name, clear, all_ in (("first", clear1, first), ("second", clear2, second)):
        if not clear:
            least = min((c.cloud for c in all_), default=float("nan"))
            raise SandmineError(
                f"site '{site_id}': no date in the {name} window has cloud <= {max_cloud} "
                f"({len(all_)} dates, least cloudy {least:.0%})",
                "observation selector",
                "widen the window or raise the cloud limit",
            )
    pairs = itertools.product(clear1, clear2)
    return max(pairs, key=lambda p: (round(change(*p), 6), -(p[0].cloud + p[1].cloud), p[0].date < p[1].date))


def rows(site_id: str, pair: tuple[Candidate, Candidate]) -> list[str]:
    """Lines of observations.csv (obs_id,site_id,date,role) for a chosen pair."""
    return [f"{site_id}_{c.date},{site_id},{c.date},labelled" for c in pair]


def candidates_expression(region_4326: list[float], start: str, end: str, cs_threshold: float = 0.6) -> Any:
    """An ee.FeatureCollection with one feature per Sentinel-2 date in [start, end): properties
    `date`, `cloud` (share of the site with cs_cdf below the threshold), `ndvi`, `mndwi` (means
    over clear pixels). `.getInfo()` gives the Candidates."""
    import ee

    region = ee.Geometry.Rectangle(region_4326, "EPSG:4326", False)
    s2 = (
        ee.ImageCollection("COPERNICUS/S2_SR_HARMONIZED")
        .filterBounds(region)
        .filterDate(start, end)
        .linkCollection(ee.ImageCollection("GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"), ["cs_cdf"])
    )

    def stats(img: Any) -> Any:
        clear = img.select("cs_cdf").gte(cs_threshold)
        ndvi = img.normalizedDifference(["B8", "B4"]).rename("ndvi")
        mndwi = img.normalizedDifference(["B3", "B11"]).rename("mndwi")
        means = ndvi.addBands(mndwi).updateMask(clear).reduceRegion(ee.Reducer.mean(), region, 20, maxPixels=1e9)
        cloud = clear.Not().reduceRegion(ee.Reducer.mean(), region, 20, maxPixels=1e9).get("cs_cdf")
        return ee.Feature(None, means).set({"date": img.date().format("YYYY-MM-dd"), "cloud": cloud})

    return ee.FeatureCollection(s2.map(stats))


def from_features(fc: dict) -> list[Candidate]:
    """Candidates from the getInfo() of `candidates_expression` (dates without clear pixels dropped)."""
    out = []
    for f in fc.get("features", []):
        p = f.get("properties", {})
        if p.get("ndvi") is None or p.get("mndwi") is None:
            continue
        out.append(Candidate(p["date"], float(p["cloud"]), float(p["ndvi"]), float(p["mndwi"])))
    return sorted(out, key=lambda c: c.date)


def select_observations(
    sites: dict, first: tuple[str, str], second: tuple[str, str], max_cloud: float, fetch: Any = None
) -> list[str]:
    """Lines of observations.csv (with header) choosing two dates per site.

    `fetch(bounds, start, end)` returns Candidates; by default Earth Engine (initialised first).
    """

    def ee_fetch(bounds: tuple[float, float, float, float], start: str, end: str) -> list[Candidate]:
        return from_features(candidates_expression(list(bounds), start, end).getInfo())

    fetch = fetch or ee_fetch
    lines = ["obs_id,site_id,date,role"]
    for site_id, site in sorted(sites.items()):
        bounds = site.geometry.bounds
        pair = choose(site_id, fetch(bounds, *first), fetch(bounds, *second), max_cloud)
        lines += rows(site_id, pair)
    return lines
