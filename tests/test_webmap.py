"""The map report renders in a real browser: headless Chromium loads it with no network and
every layer (imagery, probability, polygons, change) is drawn."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

from sandmine import monitoring, webmap
from sandmine.raster import Grid
from sandmine.vectorize import class_polygons, polygons


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.fail("chromium not found: `source scripts/env.sh` installs it (as root), or apt-get install chromium")
    return exe


def _report(tmp_path, synthetic=True):
    grid = Grid(CRS.from_epsg(32644), from_origin(500_000, 2_800_000, 10, 10), 200, 300)
    rng = np.random.default_rng(0)
    obs = []
    for i, date in enumerate(["2025-11-15", "2026-04-10"]):
        q = np.zeros((200, 300), np.uint8)
        q[50:90, 60 : 110 + 40 * i] = 230
        mask = q >= 128
        feats = polygons(q / 255.0, grid, 0.5, 0.2, {"site_id": "son_a", "date": date})
        obs.append(
            {
                "obs_id": f"son_a_{date}",
                "site_id": "son_a",
                "date": date,
                "grid": grid,
                "q": q,
                "mask": mask,
                "features": feats,
                "area_ha": sum(f["properties"]["area_ha"] for f in feats),
                "rgb": rng.uniform(0, 1, (200, 300, 3)),
            }
        )
    classes = monitoring.change(obs[0]["mask"], obs[1]["mask"])
    feats = class_polygons(classes, grid, monitoring.CHANGE_NAMES, 0.2, {"site_id": "son_a"})
    changes = [{"site_id": "son_a", "from": obs[0]["date"], "to": obs[1]["date"], "features": feats,
                "new": 0.0, "expanded": 16.0, "abandoned": 0.0}]  # fmt: skip
    path = tmp_path / "map.html"
    webmap.map_report({"son_a": obs}, changes, {"son_a": 24.0}, synthetic, path)
    return path


def _dom(path, tmp_path):
    res = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", res.stdout)
    assert body, res.stdout[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1))), res.stdout


def test_all_layers_render_in_chromium(tmp_path):
    path = _report(tmp_path)
    html = path.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained: opens offline
    attrs, dom = _dom(path, tmp_path)
    assert attrs["ready"] == "1"
    assert attrs["images-ok"] == "4" and attrs["images-failed"] == "0"  # imagery + probability, 2 dates
    assert attrs["polygons"] == "2"  # one mine per date
    assert attrs["visible-polygons"] == "1"  # only the selected (latest) date is shown
    assert int(attrs["change-polygons"]) >= 1
    assert "synthetic-banner" in dom and "SYNTHETIC DATA" in dom


def test_polygons_and_banner_are_drawn(tmp_path):
    path = _report(tmp_path)
    shot = tmp_path / "shot.png"
    res = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400",
         f"--screenshot={shot}", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    banner = (np.abs(px - [187, 0, 0]).sum(axis=1) < 30).sum()
    polygon_edge = (np.abs(px - [255, 220, 0]).sum(axis=1) < 40).sum()
    expanded = (np.abs(px - [255, 136, 0]).sum(axis=1) < 60).sum()
    assert banner > 1000, "red synthetic-data banner not drawn"
    assert polygon_edge > 50, "polygon outlines not drawn"
    assert expanded > 50, "change layer not drawn"


def test_no_banner_for_real_data(tmp_path):
    assert "synthetic-banner" not in _report(tmp_path, synthetic=False).read_text()


def test_a_broken_layer_is_reported(tmp_path):
    path = _report(tmp_path)
    html = path.read_text()
    start = html.index("src='data:image/png;base64,") + len("src='data:image/png;base64,")
    path.write_text(html[:start] + "AAAA" + html[start + 4 :])  # corrupt the first image
    attrs, _ = _dom(path, tmp_path)
    assert attrs["images-failed"] == "1" and attrs["images-ok"] == "3"
