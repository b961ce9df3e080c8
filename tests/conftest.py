"""Fixtures: tiny georeferenced rasters and a tiny world, made fresh for each test."""

# first: importing sandmine pins the CPU kernels (core/determinism.py), which must happen before numpy and torch load
import sandmine  # noqa: F401, I001
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from rasterio.crs import CRS
from rasterio.transform import from_origin

from sandmine.core.raster import Grid
from sandmine.sources.synthetic.catalogue import observations_csv, sites_geojson

# property tests draw the same examples on every run: a red CI run can be reproduced
settings.register_profile("sandmine", derandomize=True, deadline=None)
settings.load_profile("sandmine")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say the free space where the tests write: a run writes ~1.9 GB in all, a passed test's files go as it ends."""
    free = shutil.disk_usage(tempfile.gettempdir()).free
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"sandmine: {free / 2**30:.1f} GiB free in {tempfile.gettempdir()}")


# three small sites far apart (three clusters) plus one near the first
TINY_SITES = [
    ("betwa_a", "Betwa", "Yamuna", 79.95, 25.93, 1.6, 1.6),
    ("betwa_b", "Betwa", "Yamuna", 79.99, 25.95, 1.6, 1.6),
    ("son_a", "Son", "Ganga", 84.18, 24.90, 1.6, 1.6),
    ("krishna_a", "Krishna", "Krishna", 80.60, 16.52, 1.6, 1.6),
]


@pytest.fixture
def grid() -> Grid:
    """A 64 × 80 px, 10 m grid in UTM 44N."""
    return Grid(CRS.from_epsg(32644), from_origin(500_000, 2_800_000, 10, 10), 64, 80)


@pytest.fixture
def tiny_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """sites.geojson and observations.csv of a four-site world (two dates, one infer date)."""
    sites = tmp_path / "sites.geojson"
    sites.write_text(json.dumps(sites_geojson(TINY_SITES)))
    obs = tmp_path / "observations.csv"
    obs.write_text(
        observations_csv([s[0] for s in TINY_SITES], ["2025-11-15", "2026-04-10"], {"son_a": ["2026-11-08"]})
    )
    return sites, obs


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
