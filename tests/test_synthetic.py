"""The embedded world: determinism, the physics we rely on, and labels that match the truth."""

import datetime as dt
import filecmp

import numpy as np
import pytest
from scipy import ndimage

from sandmine.core.config import LabelsParams, WorldParams
from sandmine.core.raster import grid_for_bounds
from sandmine.core.schema import MINE, rasterize_row
from sandmine.core.sites import read_observations, read_sites
from sandmine.sources.labelbox import parse_row
from sandmine.sources.synthetic.annotator import annotate
from sandmine.sources.synthetic.materials import CODE, load_signatures
from sandmine.sources.synthetic.render import render
from sandmine.sources.synthetic.scene import Terrain
from sandmine.sources.synthetic.world import export

DATE = dt.date(2026, 4, 10)


@pytest.fixture(scope="module")
def scene():
    site = Terrain("test_site", 240, 260, seed=3, mine_density=1.0)
    layout = site.on(DATE)
    pixels, names = render(layout, load_signatures(), np.random.default_rng(5), 0.0, 0.0)
    return site, layout, pixels, names


def test_same_seed_same_world(scene):
    _, layout, pixels, _ = scene
    again = Terrain("test_site", 240, 260, seed=3, mine_density=1.0).on(DATE)
    np.testing.assert_array_equal(again.material, layout.material)
    p2, _ = render(again, load_signatures(), np.random.default_rng(5), 0.0, 0.0)
    np.testing.assert_array_equal(p2, pixels)


def test_export_is_byte_identical(tmp_path, tiny_inputs):
    sites = read_sites(tiny_inputs[0])
    obs = read_observations(tiny_inputs[1], sites)[:2]
    bands = ["B2", "B3", "B4", "B8", "B11", "VV", "CLOUD"]
    for run in ("a", "b"):
        export(sites, obs, bands, WorldParams(), tmp_path / run / "images", tmp_path / run / "source")
    for name in ("images/manifest.csv", f"images/{obs[0].obs_id}.tif", "source/labels.ndjson", "source/rivers.geojson"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name


@pytest.mark.parametrize(
    "material,signature",
    [
        ("dry_sand", "dry_river_sand"),
        ("river_water", "turbid_river_water"),
        ("crop", "cropland_green"),
        ("soil", "bare_soil"),
    ],
)
def test_band_medians_match_signatures(scene, material, signature):
    _, layout, pixels, names = scene
    import json
    from importlib import resources

    raw = json.loads(resources.files("sandmine.sources.synthetic").joinpath("s2_s1_signatures.json").read_text())
    core = ndimage.binary_erosion(layout.material == CODE[material], iterations=3)
    core &= layout.moisture < 0.05
    assert core.sum() > 50
    for band in ("B4", "B8", "B11", "B12"):  # red to SWIR: haze is small there
        got = float(np.median(pixels[names.index(band)][core]))
        want = raw["median"][signature][raw["bands"].index(band)]
        assert got == pytest.approx(want, rel=0.3, abs=0.01), (material, band)


def test_s1_water_darker_than_sand_and_urban_bright(scene):
    _, layout, pixels, names = scene
    vv = pixels[names.index("VV")]
    water = np.median(vv[layout.material == CODE["river_water"]])
    sand = np.median(vv[layout.material == CODE["dry_sand"]])
    assert water < sand - 1.0


def test_mines_lie_within_the_river_buffer(scene):
    site, layout, _, _ = scene
    from sandmine.sources.synthetic.layout import burn

    channel = burn(layout.truth.shape, site.channel)
    dist_m = ndimage.distance_transform_edt(~channel) * 10
    assert layout.truth.any()
    assert (dist_m[layout.truth] <= 1000).mean() > 0.99


def test_mine_fraction_in_realistic_range(scene):
    _, layout, _, _ = scene
    assert 0.005 < layout.truth.mean() < 0.12


def test_annotator_labels_align_with_truth(scene):
    _, layout, _, _ = scene
    grid = grid_for_bounds((79.95, 25.93, 79.976, 25.952))
    grid = type(grid)(grid.crs, grid.transform, 240, 260)
    row = parse_row(
        annotate(layout, "t_2026-04-10", DATE, grid.crs, grid.transform, np.random.default_rng(1), miss_ha=0.4)
    )
    mask, _ = rasterize_row(row, grid, np.ones((240, 260), bool), LabelsParams())
    drawn = mask == MINE
    inter = (drawn & layout.truth).sum()
    assert inter / layout.truth.sum() > 0.6  # most truth is labelled (some small mines missed)
    assert inter / drawn.sum() > 0.5  # most of what is drawn is mining (boundary error)


def test_catalogue_default_and_paper_sizes():
    from sandmine.sources.synthetic.catalogue import catalogue

    default = catalogue()
    assert len(default) == 39
    assert len({s[2] for s in default}) >= 18  # basins
    assert all(w > h for *_, w, h in default)  # broad across the river
    paper = catalogue("paper")
    areas = [w * h for *_, w, h in paper]
    assert min(areas) == pytest.approx(2.5, rel=1e-3)
    assert max(areas) == pytest.approx(582, rel=1e-3)
    assert sum(areas) == pytest.approx(9614, rel=1e-3)


def test_river_runs_across_the_short_side():
    site = Terrain("broad", 150, 600, seed=1, mine_density=1.0)
    channel = site.channel
    # a river flowing top to bottom crosses both the top and the bottom edge
    from shapely.geometry import LineString

    assert channel.intersects(LineString([(0, 0.5), (600, 0.5)]))
    assert channel.intersects(LineString([(0, 149.5), (600, 149.5)]))


def test_blobs_are_single_polygons(rng):
    from sandmine.sources.synthetic.layout import _blob

    for _ in range(500):
        blob = _blob(rng, 50, 50, rng.uniform(2, 20), rng.uniform(1, 3), rng.uniform(0, 3), k=int(rng.integers(4, 15)))
        assert blob.geom_type == "Polygon" and blob.is_valid and blob.area > 0
