"""The map report in a real browser: headless Chromium (Debian's, driven by Playwright) opens the
page from a file:// URL with the network blocked; every layer draws, a polygon click opens its
popup, the date switch swaps the layers, and no request leaves the page unless the basemap is on.

`SANDMINE_MAP_SCREENSHOT=/tmp/sandmine-map.png pytest tests/test_webmap.py -k screenshot` keeps the picture.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright
from rasterio.crs import CRS
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import Point, shape

from sandmine import monitoring, webmap
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, grid_for_bounds, to_crs
from sandmine.vectorize import class_polygons, polygons

DATES = ["2025-11-15", "2026-04-10"]
# mines as (row0, row1, col0, col1) per date: A grows, B is abandoned, C stays, D is new
MINES = {
    DATES[0]: [(150, 185, 60, 120), (140, 170, 200, 240), (200, 230, 300, 350)],
    DATES[1]: [(150, 195, 60, 150), (200, 230, 300, 350), (130, 160, 250, 290)],
}
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.fail("chromium not found: `source scripts/env.sh` installs it (as root), or apt-get install chromium")
    return exe


def _scene(rng: np.random.Generator, shape_: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A river scene: fields, a meandering river with sand bars on both banks. (H, W, 3) RGB, sand mask."""
    h, w = shape_
    rows, cols = np.mgrid[0:h, 0:w]
    centre = 170 + 25 * np.sin(cols / 60.0)
    d = np.abs(rows - centre)
    fields = ndimage.gaussian_filter(rng.uniform(0, 1, (h, w)), 6)
    rgb = np.dstack([0.25 + 0.2 * fields, 0.35 + 0.15 * fields, 0.15 + 0.08 * fields])  # crops and soil
    sand = (d < 70) & (d >= 18)
    rgb[sand] = [0.78, 0.72, 0.58]
    rgb[d < 18] = [0.12, 0.22, 0.32]  # water
    rgb += rng.normal(0, 0.02, rgb.shape)
    return np.clip(rgb, 0, 1), sand


def _report(tmp_path: Path, synthetic: bool = True) -> tuple[Path, dict]:
    grid = grid_for_bounds((84.16, 24.89, 84.20, 24.92))  # the Son at Dehri, UTM 45N, 10 m
    rng = np.random.default_rng(0)
    obs = []
    for date in DATES:
        rgb, _ = _scene(rng, (grid.height, grid.width))
        prob = np.zeros((grid.height, grid.width))
        for r0, r1, c0, c1 in MINES[date]:
            prob[r0:r1, c0:c1] = 0.9
            rgb[r0:r1, c0:c1] = [0.55, 0.5, 0.42]  # disturbed, wetter sand
        prob = np.clip(ndimage.gaussian_filter(prob, 2) + rng.normal(0, 0.03, prob.shape), 0, 1)
        q = np.rint(prob * 255).astype(np.uint8)
        mask = monitoring.clean(q >= 128, 20)
        feats = polygons(np.where(mask, q / 255.0, 0.0), grid, 0.5, 0.2, {"site_id": "son_dehri", "date": date})
        feats = [{**f, "properties": {**f["properties"], "obs_id": f"son_dehri_{date}"}} for f in feats]
        obs.append(
            {
                "obs_id": f"son_dehri_{date}",
                "site_id": "son_dehri",
                "date": date,
                "grid": grid,
                "q": q,
                "mask": mask,
                "features": feats,
                "area_ha": sum(f["properties"]["area_ha"] for f in feats),
                "rgb": rgb,
            }
        )
    classes = monitoring.change(obs[0]["mask"], obs[1]["mask"])
    feats = class_polygons(classes, grid, monitoring.CHANGE_NAMES, 0.2, {"site_id": "son_dehri"})
    feats = [{**f, "properties": {**f["properties"], "from": DATES[0], "to": DATES[1]}} for f in feats]
    ha = {n: float((classes == k).sum()) * grid.pixel_area_ha for k, n in monitoring.CHANGE_NAMES.items()}
    changes = [{"site_id": "son_dehri", "from": DATES[0], "to": DATES[1], "features": feats, **ha}]
    median = monitoring.temporal_median([o["q"] for o in obs])
    median_feats = polygons(median / 255.0, grid, 0.5, 0.2, {"dates": "/".join(DATES)})
    path = tmp_path / "map.html"
    medians = {"son_dehri": sum(f["properties"]["area_ha"] for f in median_feats)}
    webmap.map_report({"son_dehri": obs}, changes, medians, synthetic, path, {"son_dehri": median_feats})
    return path, {"obs": obs, "changes": feats}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A page in a fresh context with every http(s) request blocked and recorded."""

    def __init__(self, browser, path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route(re.compile(r"^https?://"), self._block)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=30_000)

    def _block(self, route) -> None:
        self.blocked.append(route.request.url)
        route.abort()

    def attr(self, name: str) -> str:
        return self.page.evaluate(f"document.body.dataset.{name}")

    def click_lonlat(self, lon: float, lat: float) -> None:
        x, y = self.page.evaluate(
            """([lat, lon]) => { const p = sandmine.map.latLngToContainerPoint([lat, lon]);
                 const r = document.getElementById('map').getBoundingClientRect();
                 return [p.x + r.left, p.y + r.top]; }""",
            [lat, lon],
        )
        self.page.mouse.click(x, y)

    def zoom_to_site(self) -> None:
        self.page.click("a.zoom[data-site='son_dehri']")
        self.page.wait_for_timeout(400)  # fitBounds animates

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def report(tmp_path):
    return _report(tmp_path)


@pytest.fixture
def page(browser, report):
    pg = Page(browser, report[0])
    yield pg
    pg.close()


def _inside_only(feature: dict, others: list[dict]) -> tuple[float, float]:
    """A lon/lat point inside `feature` and in none of `others` (clicks must hit it, not a layer above)."""
    geom = shape(feature["geometry"])
    for other in others:
        geom = geom.difference(shape(other["geometry"]))
    p = geom.buffer(-0.00005).representative_point() if not geom.buffer(-0.00005).is_empty else geom.centroid
    return p.x, p.y


def test_all_layers_render_in_chromium(page, report):
    _, truth = report
    latest = truth["obs"][-1]
    assert page.attr("imagesOk") == "4" and page.attr("imagesFailed") == "0"  # imagery + probability, 2 dates
    assert page.attr("polygons") == str(sum(len(o["features"]) for o in truth["obs"]))
    p = page.page
    assert p.locator(".leaflet-image-layer").count() == 2  # the latest date's imagery and probability
    paths = p.locator(".leaflet-overlay-pane path.leaflet-interactive").count()
    assert paths == len(latest["features"]) + len(truth["changes"])
    control = p.locator(".leaflet-control-layers").inner_text()
    for label in ("No basemap", "OpenStreetMap", "Imagery", "Mine probability", "Mine polygons", "Change", "median"):
        assert label in control
    assert p.locator(".leaflet-control-scale-line").inner_text().strip().endswith(("m", "km"))
    assert p.locator("svg.chart circle.point").count() == 2  # area over time, one point per date
    assert "SYNTHETIC DATA" in p.locator("#synthetic-banner").inner_text()
    assert "Leaflet 1.9.4" in p.locator("meta[name=generator]").get_attribute("content")
    assert not page.errors


def test_polygon_click_opens_its_popup_with_the_area(page, report):
    _, truth = report
    latest = truth["obs"][-1]
    page.zoom_to_site()
    mine = max(latest["features"], key=lambda f: f["properties"]["area_ha"])
    page.click_lonlat(*_inside_only(mine, truth["changes"]))
    popup = page.page.wait_for_selector(".leaflet-popup-content", timeout=5000).inner_text()
    assert f"{mine['properties']['area_ha']:.2f} ha" in popup
    assert str(mine["properties"]["mean_prob"]) in popup and DATES[1] in popup
    new = next(f for f in truth["changes"] if f["properties"]["change"] == "new")
    page.click_lonlat(*_inside_only(new, []))
    page.page.wait_for_function("document.querySelector('.leaflet-popup-content').innerText.includes('new mining')")
    popup = page.page.inner_text(".leaflet-popup-content")
    assert f"{new['properties']['area_ha']:.2f} ha" in popup and DATES[0] in popup
    assert not page.errors


def test_the_date_switch_swaps_imagery_and_polygons(page, report):
    _, truth = report
    p = page.page
    before = p.locator(".leaflet-image-layer").first.get_attribute("src")
    p.check(f"input.date[value='{DATES[0]}']")
    assert p.locator(".leaflet-image-layer").count() == 2
    assert p.locator(".leaflet-image-layer").first.get_attribute("src") != before
    paths = p.locator(".leaflet-overlay-pane path.leaflet-interactive").count()
    assert paths == len(truth["obs"][0]["features"])  # no change layer before the first date
    assert not page.errors


def test_no_request_leaves_the_page_unless_the_basemap_is_on(page):
    page.zoom_to_site()
    page.page.check("input.date[value='2025-11-15']")
    assert {urlparse(u).scheme for u in page.requests} <= {"file", "data"}, page.requests
    assert not page.blocked
    page.page.get_by_text("OpenStreetMap (online)").click()  # the optional basemap: blocked here, as offline
    page.page.wait_for_timeout(500)
    assert page.blocked and all("tile.openstreetmap.org" in u for u in page.blocked)
    assert not page.errors  # failed tiles leave the map blank, nothing breaks
    assert page.page.locator(".leaflet-image-layer").count() == 2


def test_screenshot_shows_imagery_polygons_change_and_banner(page, report, tmp_path):
    page.zoom_to_site()
    mine = max(report[1]["obs"][-1]["features"], key=lambda f: f["properties"]["area_ha"])
    page.click_lonlat(*_inside_only(mine, report[1]["changes"]))  # what a click shows, in the picture
    page.page.wait_for_selector(".leaflet-popup-content")
    page.page.wait_for_timeout(500)  # the popup fades in
    shot = tmp_path / "map.png"
    page.page.screenshot(path=str(shot))
    if os.environ.get("SANDMINE_MAP_SCREENSHOT"):
        shutil.copy(shot, os.environ["SANDMINE_MAP_SCREENSHOT"])
    px = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    near = lambda rgb, tol: int((np.abs(px - rgb).sum(axis=1) < tol).sum())  # noqa: E731
    assert near([187, 0, 0], 30) > 1000, "red synthetic-data banner not drawn"
    assert near([255, 220, 0], 40) > 50, "mine polygon outlines not drawn"
    assert near([200, 184, 148], 40) > 5000, "imagery (sand bars) not drawn"
    assert near([238, 0, 0], 90) + near([255, 136, 0], 90) > 200, "change polygons not drawn"


def test_a_broken_layer_is_reported(browser, report, tmp_path):
    path = report[0]
    text = path.read_text()
    data = text.index("id='sandmine-data'")  # past Leaflet's own inlined icons
    start = text.index("data:image/png;base64,", data) + len("data:image/png;base64,")
    path.write_text(text[:start] + "AAAA" + text[start + 4 :])  # corrupt the first imagery layer
    pg = Page(browser, path)
    try:
        assert pg.attr("imagesFailed") == "1" and pg.attr("imagesOk") == "3"
        assert "failed to load" in pg.page.inner_text("#warning")
    finally:
        pg.close()


def test_no_banner_for_real_data(tmp_path):
    assert "synthetic-banner" not in _report(tmp_path, synthetic=False)[0].read_text()


def test_the_page_names_no_address_but_the_optional_basemap(report):
    text = report[0].read_text()
    js, css, _ = webmap.leaflet_assets()
    own = text.replace(js, "").replace(css, "")  # Leaflet's own strings: links in comments, the SVG namespace
    assert set(re.findall(r"https?://[^\s'\"]+", own)) == {webmap.BASEMAP["url"]}
    assert os.path.getsize(report[0]) < 2_000_000


def test_warp_keeps_pixels_where_they_are():
    grid = Grid(CRS.from_epsg(32645), from_origin(220_000, 2_760_000, 10, 10), 300, 400)
    bands = np.zeros((1, 300, 400), np.float32)
    bands[0, 100:110, 250:260] = 1.0
    warped, cover, ((south, west), (north, east)) = webmap.warp_to_web_mercator(grid, bands)
    assert cover[cover.shape[0] // 2, cover.shape[1] // 2] == 1.0
    rows, cols = np.nonzero(warped[0] > 0.5)
    h, w = cover.shape
    # the block's centre in the overlay, as Leaflet places it (linear in Mercator between the bounds)
    merc = to_crs(Point(west, south), "EPSG:4326", "EPSG:3857"), to_crs(Point(east, north), "EPSG:4326", "EPSG:3857")
    x = merc[0].x + (cols.mean() + 0.5) / w * (merc[1].x - merc[0].x)
    y = merc[1].y - (rows.mean() + 0.5) / h * (merc[1].y - merc[0].y)
    truth = to_crs(Point(220_000 + 2550, 2_760_000 - 1050), grid.crs, "EPSG:3857")
    assert abs(x - truth.x) < 15 and abs(y - truth.y) < 15  # metres of Mercator: within a pixel
    big = Grid(CRS.from_epsg(32645), from_origin(220_000, 2_760_000, 10, 10), 3000, 5000)
    _, cover, _ = webmap.warp_to_web_mercator(big, np.zeros((1, 3000, 5000), np.float32), max_px=512)
    assert max(cover.shape) <= 512


def test_missing_leaflet_is_a_user_error(tmp_path):
    with pytest.raises(SandmineError, match="Leaflet") as err:
        webmap.leaflet_assets(tmp_path)
    assert "scripts/env.sh" in str(err.value)


def test_a_report_without_sites_still_opens(browser, tmp_path):
    path = tmp_path / "empty.html"
    webmap.map_report({}, [], {}, False, path)
    pg = Page(browser, path)
    try:
        assert pg.attr("imagesOk") == "0" and not pg.errors
    finally:
        pg.close()


def test_overlays_drawn_ahead_give_the_same_page(tmp_path, report):
    """The infer stage draws each site's overlays and drops its rasters: the page must not change."""
    path, data = report
    obs = [{**o, "overlays": webmap.overlays(o), "rgb": None, "q": None, "mask": None} for o in data["obs"]]
    median = monitoring.temporal_median([o["q"] for o in data["obs"]])
    grid = data["obs"][0]["grid"]
    median_feats = polygons(median / 255.0, grid, 0.5, 0.2, {"dates": "/".join(DATES)})
    ha = {n: float((monitoring.change(data["obs"][0]["mask"], data["obs"][1]["mask"]) == k).sum()) * grid.pixel_area_ha
          for k, n in monitoring.CHANGE_NAMES.items()}  # fmt: skip
    changes = [{"site_id": "son_dehri", "from": DATES[0], "to": DATES[1], "features": data["changes"], **ha}]
    medians = {"son_dehri": sum(f["properties"]["area_ha"] for f in median_feats)}
    again = tmp_path / "again" / "map.html"  # the same name: the page names its review downloads after it
    again.parent.mkdir()
    webmap.map_report({"son_dehri": obs}, changes, medians, True, again, {"son_dehri": median_feats})
    assert again.read_bytes() == path.read_bytes()


# ------------------------------------------------------------------------------------------------ review


PERIODS = ["2025-10-01_2025-12-31", "2026-03-01_2026-05-31"]


def _survey_report(tmp_path: Path) -> tuple[Path, dict]:
    """A survey-shaped report (as steps/survey.py `_map` makes it): one site per UTM zone, one observation per
    period (obs_id = period label, date = its middle), polygons with period and river; the east 40 % of the
    canvas has no imagery (NaN), as beside the river in the 120 km strip, with a high probability there."""
    grid = grid_for_bounds((84.16, 24.89, 84.20, 24.92))
    rng = np.random.default_rng(1)
    obs = []
    for period, middle in zip(PERIODS, ["2025-11-15", "2026-04-15"]):
        rgb, _ = _scene(rng, (grid.height, grid.width))
        prob = np.zeros((grid.height, grid.width))
        for r0, r1, c0, c1 in [(150, 195, 60, 150), (130, 160, 170, 220), (210, 240, 190, 230)]:
            prob[r0:r1, c0:c1] = 0.9
        nodata = np.zeros(prob.shape, bool)
        nodata[:, int(grid.width * 0.6) :] = True
        prob[nodata] = 0.95  # what a model may say on filled no-data: must not show
        rgb[nodata] = np.nan
        q = np.rint(prob * 255).astype(np.uint8)
        props = {"period": period, "river": "Son", "date": period, "obs_id": period}
        feats = polygons(np.where(~nodata, prob, 0.0), grid, 0.5, 0.2, props)
        area = sum(f["properties"]["area_ha"] for f in feats)
        obs.append({"obs_id": period, "date": middle, "grid": grid, "rgb": rgb, "q": q, "features": feats,
                    "area_ha": area, "nodata": nodata})  # fmt: skip
    path = tmp_path / "survey.html"
    webmap.map_report({"survey 45N": obs}, [], {}, True, path)
    return path, {"obs": obs}


def _xy(page: Page, lon: float, lat: float) -> tuple[float, float]:
    return page.page.evaluate(
        """([lat, lon]) => { const p = sandmine.map.latLngToContainerPoint([lat, lon]);
             const r = document.getElementById('map').getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }""",
        [lat, lon],
    )


def _decide(page: Page, feature: dict, verdict: str) -> None:
    """A verdict from the polygon's popup (a change polygon drawn above it shows the same buttons)."""
    page.page.evaluate("sandmine.map.closePopup()")
    page.page.wait_for_function("!document.querySelector('.leaflet-popup')")  # it fades out for 200 ms
    page.click_lonlat(*_inside_only(feature, []))
    page.page.click(f".leaflet-popup-content button[data-verdict='{verdict}']")


def _pixel_lonlat(grid: Grid, row: float, col: float) -> tuple[float, float]:
    x, y = grid.transform * (col, row)
    p = to_crs(Point(x, y), grid.crs, "EPSG:4326")
    return p.x, p.y


def _draw(page: Page, grid: Grid, corners: list[tuple[float, float]]) -> None:
    """Draw a polygon with the review's tool: a click per corner (pixel row, col), a double click on the last."""
    page.page.click("#draw")
    for row, col in corners[:-1]:
        page.click_lonlat(*_pixel_lonlat(grid, row, col))
    page.page.mouse.dblclick(*_xy(page, *_pixel_lonlat(grid, *corners[-1])))


def _counts(page: Page) -> dict[str, str]:
    return {k: page.page.inner_text(f"#n-{k}") for k in ("mine", "not_mine", "unsure", "left", "missed")}


def test_review_round_trip_verdicts_reload_download_labels(page, report, tmp_path, capsys):
    from sandmine import review
    from sandmine.__main__ import main
    from sandmine.core.config import LabelsParams
    from sandmine.core.schema import IGNORE, MINE, rasterize_row
    from sandmine.sources.local import geojson_labels

    _, truth = report
    latest = truth["obs"][-1]
    feats = sorted(latest["features"], key=lambda f: -f["properties"]["area_ha"])
    assert len(feats) >= 3
    # the smallest is the new mine: a change polygon covers all of it, and its popup reviews the mine beneath
    assert shape(truth["changes"][0]["geometry"]).buffer(1e-4).contains(shape(feats[2]["geometry"])) or any(
        shape(c["geometry"]).buffer(1e-4).contains(shape(feats[2]["geometry"])) for c in truth["changes"]
    )
    total = sum(len(o["features"]) for o in truth["obs"])
    page.zoom_to_site()
    for f, verdict in zip(feats, ["mine", "not_mine", "unsure"]):
        _decide(page, f, verdict)
    assert _counts(page) == {"mine": "1", "not_mine": "1", "unsure": "1", "left": str(total - 3), "missed": "0"}
    strokes = [page.page.locator(f"path.leaflet-interactive[stroke='{c}']").count()
               for c in ("#2ecc40", "#cccccc", "#d040f0")]  # fmt: skip
    assert strokes == [1, 1, 1]  # each verdict restyles its polygon
    grid = latest["grid"]
    missed = [(280, 150), (280, 220), (320, 220), (320, 150)]  # a square of 40 x 70 px with no prediction
    _draw(page, grid, missed)
    assert _counts(page)["missed"] == "1"
    assert page.page.locator("path.leaflet-interactive[stroke='#00e5ff']").count() == 1

    page.page.reload()
    page.page.wait_for_selector("body[data-ready='1']")
    assert _counts(page) == {"mine": "1", "not_mine": "1", "unsure": "1", "left": str(total - 3), "missed": "1"}
    assert page.page.locator("path.leaflet-interactive[stroke='#2ecc40']").count() == 1
    assert page.page.locator("path.leaflet-interactive[stroke='#00e5ff']").count() == 1
    # the popup shows the verdict chosen before the reload
    page.zoom_to_site()
    page.click_lonlat(*_inside_only(feats[0], truth["changes"]))
    assert page.page.inner_text(".leaflet-popup-content button.chosen") == "mine"

    with page.page.expect_download() as info:
        page.page.click("#download")
    download = tmp_path / "decisions.geojson"
    info.value.save_as(download)
    assert info.value.suggested_filename.startswith("review-map-") and not page.errors

    decided = review.read_decisions(download)
    s = review.summarise(decided)
    assert s.counts == Counter(mine=1, not_mine=1, unsure=1, missed=1, unreviewed=len(feats) - 3)
    assert list(s.by_obs) == [latest["obs_id"]]  # only the observation the reviewer touched
    kept = next(f["properties"] for f in decided if f["properties"]["verdict"] == "mine")
    first = feats[0]["properties"]
    assert (kept["area_ha"], kept["mean_prob"]) == (first["area_ha"], first["mean_prob"])
    assert kept["date"] == DATES[1] and kept["site_id"] == "son_dehri" and kept["decided_at"].endswith("Z")
    drawn = next(f for f in decided if f["properties"]["verdict"] == "missed")
    utm_ha = to_crs(shape(drawn["geometry"]), "EPSG:4326", grid.crs).area / 1e4
    assert abs(drawn["properties"]["area_ha"] - utm_ha) < 0.01 * utm_ha and abs(utm_ha - 28) < 1  # 40 x 70 px of 10 m

    # the label reader takes each observation's file as it is
    files = review.split_labels(decided, tmp_path / "labels")
    assert [f.name for f in files] == [f"{latest['obs_id']}.geojson"]
    row = geojson_labels(files[0], latest["obs_id"])
    classes = sorted(a.cls for a in row.annotations)
    assert classes == sorted(["mine", "not_mine", "ignore", "mine"] + ["ignore"] * (len(feats) - 3))
    assert {a.confidence for a in row.annotations} == {"high"}
    valid = np.ones((grid.height, grid.width), bool)
    mask, _ = rasterize_row(row, grid, valid, LabelsParams())
    assert not row.problems
    utm = [to_crs(shape(f["geometry"]), "EPSG:4326", grid.crs).representative_point() for f in feats[:3]]
    (c0, r0), (c1, r1), (c2, r2) = (tuple(int(v) for v in ~grid.transform * (p.x, p.y)) for p in utm)
    assert (mask[r0, c0], mask[r1, c1], mask[r2, c2], mask[300, 185]) == (MINE, 0, IGNORE, MINE)

    main(["review-stats", str(download)])
    out = capsys.readouterr().out
    assert "precision 0.500 (1 mine / 2 decided), Wilson 95 % CI 0.095–0.905" in out
    assert "missed mines drawn: 1" in out and latest["obs_id"] in out


def test_review_of_the_survey_report_and_reports_do_not_mix(browser, tmp_path):
    from sandmine import review

    path, truth = _survey_report(tmp_path)
    other, _ = _report(tmp_path)  # the map report, opened in the same browser storage (file:// shares it)
    pg = Page(browser, path)
    try:
        first = truth["obs"][-1]
        pg.page.click("a.zoom[data-site='survey 45N']")
        pg.page.wait_for_timeout(400)
        feats = sorted(first["features"], key=lambda f: -f["properties"]["area_ha"])
        _decide(pg, feats[0], "mine")
        _decide(pg, feats[1], "not_mine")
        pg.page.reload()
        pg.page.wait_for_selector("body[data-ready='1']")
        assert _counts(pg)["mine"] == "1" and _counts(pg)["not_mine"] == "1"
        with pg.page.expect_download() as info:
            pg.page.click("#download")
        info.value.save_as(tmp_path / "survey-decisions.geojson")
        decided = review.read_decisions(tmp_path / "survey-decisions.geojson")
        assert {f["properties"]["obs_id"] for f in decided} == {PERIODS[1]}
        assert {f["properties"]["period"] for f in decided} == {PERIODS[1]}
        assert {f["properties"]["date"] for f in decided} == {"2026-04-15"}
        s = review.summarise(decided)
        assert s.counts == Counter(mine=1, not_mine=1, unreviewed=len(feats) - 2)
        page2 = pg.context.new_page()  # another report in the same storage starts with no decisions
        page2.goto(other.as_uri())
        page2.wait_for_selector("body[data-ready='1']")
        assert page2.inner_text("#n-mine") == "0" and page2.inner_text("#n-not_mine") == "0"
        assert not pg.errors
    finally:
        pg.close()


def _alpha(uri: str) -> np.ndarray:
    import base64
    import io

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA"))[..., 3]


def test_overlays_no_data_is_transparent(tmp_path):
    """No data (NaN) draws nothing in the imagery and probability overlays, not black blocks."""
    _, truth = _survey_report(tmp_path)
    o = truth["obs"][0]
    layers = webmap.overlays(o)
    imagery, prob = _alpha(layers["imagery"]), _alpha(layers["probability"])
    h, w = imagery.shape
    west, east = slice(int(w * 0.05), int(w * 0.5)), slice(int(w * 0.7), int(w * 0.95))
    rows = slice(int(h * 0.1), int(h * 0.9))
    assert (imagery[rows, west] == 255).all() and (imagery[rows, east] == 0).all()
    assert (prob[rows, east] == 0).all()  # a probability of 0.95 over no data is not shown
    assert prob[rows, west].max() > 150  # the mines with data are
    # the fraction of transparent imagery is the no-data fraction of the footprint
    assert abs((imagery == 0).mean() - 0.4) < 0.06


def test_true_colour_keeps_no_data_for_the_map():
    from sandmine.report import true_colour

    image = np.random.default_rng(0).uniform(0.05, 0.3, (3, 20, 30)).astype(np.float32)
    image[:, :, 20:] = np.nan
    rgb = true_colour(image, ["B4", "B3", "B2"], keep_nodata=True)
    assert np.isnan(rgb[:, 20:]).all() and np.isfinite(rgb[:, :20]).all()
    plain = true_colour(image, ["B4", "B3", "B2"])
    assert (plain[:, 20:] == 0).all()
    # the stretch is of the data alone: its 2–98 % span fills 0–1 whatever the no-data share
    assert abs(np.percentile(plain[:, :20], 98) - 1) < 0.01 and np.percentile(plain[:, :20], 2) < 0.01


def test_review_drawing_cancels_and_needs_three_corners_inside_a_site(page, report):
    grid = report[1]["obs"][-1]["grid"]
    page.zoom_to_site()
    page.page.click("#draw")
    assert page.page.evaluate("document.getElementById('map').classList.contains('drawing')")
    page.click_lonlat(*_pixel_lonlat(grid, 280, 150))
    page.page.mouse.dblclick(*_xy(page, *_pixel_lonlat(grid, 280, 220)))  # two corners: not a polygon yet
    assert "three corners" in page.page.inner_text("#review-state")
    page.page.keyboard.press("Escape")
    assert "cancelled" in page.page.inner_text("#review-state") and _counts(page)["missed"] == "0"
    assert not page.page.evaluate("document.getElementById('map').classList.contains('drawing')")
    page.page.evaluate("sandmine.map.setZoom(sandmine.map.getZoom() - 2, {animate: false})")
    west, south = _pixel_lonlat(grid, grid.height + 60, -60)  # beyond the site's south-west corner
    east, north = _pixel_lonlat(grid, grid.height + 20, -20)
    page.page.click("#draw")
    for lon, lat in ((west, south), (east, south), (east, north)):
        page.click_lonlat(lon, lat)
    page.page.click("#finish")
    assert "inside a site" in page.page.inner_text("#review-state") and _counts(page)["missed"] == "0"
    assert not page.errors


def test_survey_alerts_are_listed_and_a_link_flies_to_its_period(browser, tmp_path):
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    from sandmine import alerts

    path, truth = _survey_report(tmp_path)
    obs = truth["obs"]
    target = max(obs[1]["features"], key=lambda f: f["properties"]["area_ha"])
    geom = shape(target["geometry"])
    mines = gpd.GeoDataFrame(
        pd.DataFrame([{"river": "Son", "period": PERIODS[1], "area_ha": 1.0, "mean_prob": 0.9}]),
        geometry=[geom],
        crs="EPSG:4326",
    )  # nothing in the first period: the polygon is new in the second
    zones = gpd.GeoDataFrame({"zone": ["reach"]}, geometry=[box(*geom.buffer(0.002).bounds)], crs="EPSG:4326")
    found = alerts.find(mines, PERIODS, zones, 0.0, 1.0)
    assert len(found) == 1
    webmap.map_report({"survey 45N": obs}, [], {}, True, path, alerts=alerts.map_layers(found, zones))
    pg = Page(browser, path)
    try:
        assert pg.attr("alerts") == "1"
        assert pg.page.inner_text("#alerts h2") == "Alerts: 1 in 1 protected zone(s)"
        pg.page.evaluate("sandmine.setDate('survey 45N', '2025-11-15'); sandmine.map.setView([22, 80], 5)")
        pg.page.click("a.alert-link[data-alert='0']")
        pg.page.wait_for_timeout(1500)  # the fly-to animation
        centre = pg.page.evaluate(
            "[sandmine.map.getCenter().lng, sandmine.map.getCenter().lat, sandmine.map.getZoom()]"
        )
        assert centre[:2] == pytest.approx([found.lon[0], found.lat[0]], abs=1e-4) and centre[2] == 16
        assert pg.page.evaluate("sandmine.sites['survey 45N'].date") == "2026-04-15"  # the alert's period
        assert pg.page.is_checked("input.date[value='2026-04-15']")
        drawn = pg.page.evaluate("sandmine.groups.alerts.getLayers().length + sandmine.groups.zones.getLayers().length")
        assert drawn == 2
        pg.click_lonlat(*_inside_only(target, []))  # the alert's popup, with the review of the mine beneath it
        pg.page.wait_for_selector(".leaflet-popup-content")
        assert "ALERT: new mine in reach" in pg.page.inner_text(".leaflet-popup-content")
        pg.page.click(".leaflet-popup-content button[data-verdict='mine']")
        assert _counts(pg)["mine"] == "1" and not pg.errors
    finally:
        pg.close()
