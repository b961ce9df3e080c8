"""STAC source, for real and offline: a catalogue of Earth Search-shaped items and COGs served on loopback.

The server answers a STAC API (landing page, POST/GET /search filtered by collections, bbox and datetime)
and the COGs with HTTP Range requests, so pystac-client searches and GDAL reads byte ranges over /vsicurl/
exactly as from the cloud. pystac-client cannot search a static catalogue (its search needs the item-search
conformance class and a `search` link), hence the small /search endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from sandmine.core.errors import SandmineError
from sandmine.core.raster import grid_for_bounds, read_image, utm_crs

pytest.importorskip("odc.stac")
pytest.importorskip("pystac_client")

# Earth Search v1 sentinel-2-l2a asset keys of the bands these tests use, with their resolution
S2_KEYS = {"blue": ("B02", 10), "green": ("B03", 10), "red": ("B04", 10), "nir": ("B08", 10), "swir16": ("B11", 20)}
OFFSETS = {"blue": 0, "green": 50, "red": 100, "nir": 200, "swir16": 300}  # DN added per band: tells bands apart
TILE_M = 5120  # side of a test "MGRS tile"


# ------------------------------------------------------------------------------------------ loopback server


class Loopback(ThreadingHTTPServer):
    """A STAC API and a file server on 127.0.0.1 that counts what it serves and can fail on purpose."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.lock = threading.Lock()
        self.ranges: Counter[str] = Counter()  # GETs of a file with a Range header, per path
        self.whole: Counter[str] = Counter()  # GETs of a file without one
        self.sent: Counter[str] = Counter()  # bytes of file content sent, per path
        self.searches: list[dict] = []
        self.fail = {"search": 0, "tif": 0}  # the next N requests of each kind answer 503
        self.failed: Counter[str] = Counter()

    def should_fail(self, kind: str) -> bool:
        with self.lock:
            if self.fail[kind] > 0:
                self.fail[kind] -= 1
                self.failed[kind] += 1
                return True
            return False


class Handler(BaseHTTPRequestHandler):
    server: Loopback

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _json(self, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _busy(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        if urlparse(self.path).path != "/search":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self._search(body)

    def do_HEAD(self) -> None:
        self._file(head=True)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path in ("", "/"):
            self._json(landing(self.server.url))
        elif url.path == "/search":
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            body: dict = {"datetime": q.get("datetime")}
            if "collections" in q:
                body["collections"] = q["collections"].split(",")
            if "bbox" in q:
                body["bbox"] = [float(v) for v in q["bbox"].split(",")]
            self._search(body)
        else:
            self._file(head=False)

    def _search(self, body: dict) -> None:
        if self.server.should_fail("search"):
            self._busy()
            return
        self.server.searches.append(body)
        items = [json.loads(p.read_text()) for p in sorted((self.server.root / "items").glob("*.json"))]
        found = [i for i in items if matches(i, body)]
        self._json({"type": "FeatureCollection", "features": found, "numberMatched": len(found), "links": []})

    def _file(self, head: bool) -> None:
        path = (self.server.root / urlparse(self.path).path.lstrip("/")).resolve()
        if self.server.root.resolve() not in path.parents or not path.is_file():
            self.send_error(404)
            return
        if path.suffix == ".tif" and not head and self.server.should_fail("tif"):
            self._busy()
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        start, end = 0, len(data) - 1
        if rng and not head:
            first, _, last = rng.removeprefix("bytes=").split(",")[0].partition("-")
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Type", "image/tiff" if path.suffix == ".tif" else "application/json")
        self.end_headers()
        if head:
            return
        rel = str(path.relative_to(self.server.root.resolve()))
        with self.server.lock:
            (self.server.ranges if rng else self.server.whole)[rel] += 1
            self.server.sent[rel] += end - start + 1
        self.wfile.write(data[start : end + 1])


def landing(url: str) -> dict:
    return {
        "type": "Catalog",
        "id": "loopback",
        "stac_version": "1.0.0",
        "description": "a STAC API on loopback",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [
            {"rel": "self", "href": url, "type": "application/json"},
            {"rel": "root", "href": url, "type": "application/json"},
            {"rel": "search", "href": f"{url}/search", "type": "application/geo+json", "method": "POST"},
            {"rel": "search", "href": f"{url}/search", "type": "application/geo+json", "method": "GET"},
        ],
    }


def matches(item: dict, body: dict) -> bool:
    """The STAC API item-search filters: collections, bbox intersection, datetime interval (both ends in)."""
    if body.get("collections") and item["collection"] not in body["collections"]:
        return False
    if body.get("bbox"):
        w, s, e, n = body["bbox"]
        iw, is_, ie, in_ = item["bbox"]
        if iw > e or ie < w or is_ > n or in_ < s:
            return False
    if body.get("datetime"):
        lo, _, hi = body["datetime"].partition("/")
        when = item["properties"]["datetime"]
        if (lo not in ("", "..") and when < lo) or (hi not in ("", "..") and when > hi):
            return False
    return True


@pytest.fixture
def server(tmp_path):
    srv = Loopback(tmp_path / "catalogue")
    (tmp_path / "catalogue" / "items").mkdir(parents=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


# -------------------------------------------------------------------------------------------- catalogue


def _cog(path: Path, data: np.ndarray, crs: object, transform: object, nodata: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "blocksize": 128,
        "compress": "NONE",  # constant test rasters would compress into the first range GDAL reads
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _tile(lon: float, lat: float) -> tuple[int, float, float]:
    """(EPSG, left, top) of a TILE_M square tile centred on a 10 m-aligned point near (lon, lat)."""
    crs = utm_crs(lon, lat)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    x, y = round(x / 20) * 20, round(y / 20) * 20
    return crs.to_epsg(), x - TILE_M / 2, y + TILE_M / 2


def _bbox(epsg: int, left: float, top: float) -> list[float]:
    back = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    lons, lats = back.transform([left, left + TILE_M, left, left + TILE_M], [top, top, top - TILE_M, top - TILE_M])
    return [min(lons), min(lats), max(lons), max(lats)]


def s2_item(
    server: Loopback,
    item_id: str,
    when: str,
    lon: float,
    lat: float,
    dn: int,
    cloud_cover: float,
    west_scl: int = 4,
    planetary: bool = False,
) -> dict:
    """An Earth Search v1 sentinel-2-l2a item: asset keys blue…swir16 and scl, proj:epsg/transform/shape per asset,
    eo:bands, raster:bands scale 1e-4 offset −0.1 (processing baseline 05.00); reflectance DN `dn` (+ a per-band
    offset) everywhere, SCL 4 (vegetation) in the east half of the tile and `west_scl` in the west half.
    `planetary`: the Planetary Computer's shape instead: asset keys B02…B11 and SCL, no raster:bands."""
    epsg, left, top = _tile(lon, lat)
    crs = f"EPSG:{epsg}"
    assets = {}
    for es_key, (name, res) in S2_KEYS.items():
        key = name if planetary else es_key
        n = TILE_M // res
        data = np.full((n, n), dn + OFFSETS[es_key], np.uint16)
        path = f"cogs/{item_id}/{name}.tif"
        _cog(server.root / path, data, crs, from_origin(left, top, res, res), 0)
        assets[key] = {
            "href": f"{server.url}/{path}",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": f"{key} ({name}) - {res}m",
            "eo:bands": [{"name": name, "common_name": key}],
            "proj:epsg": epsg,
            "proj:shape": [n, n],
            "proj:transform": [res, 0, left, 0, -res, top],
            "raster:bands": [
                {"nodata": 0, "data_type": "uint16", "spatial_resolution": res, "scale": 0.0001, "offset": -0.1}
            ],
            "roles": ["data", "reflectance"],
        }
        if planetary:
            del assets[key]["raster:bands"]
    n = TILE_M // 20
    scl = np.full((n, n), 4, np.uint8)
    scl[:, : n // 2] = west_scl
    _cog(server.root / f"cogs/{item_id}/SCL.tif", scl, crs, from_origin(left, top, 20, 20), 0)
    assets["SCL" if planetary else "scl"] = {
        "href": f"{server.url}/cogs/{item_id}/SCL.tif",
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "proj:epsg": epsg,
        "proj:shape": [n, n],
        "proj:transform": [20, 0, left, 0, -20, top],
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20, "unit": "1"}],
        "roles": ["data"],
    }
    if planetary:
        del assets["SCL"]["raster:bands"]
    return _write_item(
        server,
        item_id,
        "sentinel-2-l2a",
        when,
        epsg,
        left,
        top,
        assets,
        {
            "platform": "sentinel-2a",
            "constellation": "sentinel-2",
            "eo:cloud_cover": cloud_cover,
            "s2:processing_baseline": "05.00",
            "s2:product_type": "S2MSI2A",
            "mgrs:utm_zone": epsg % 100,
        },
    )


def s1_item(server: Loopback, item_id: str, when: str, lon: float, lat: float, vv: float, vh: float) -> dict:
    """A Sentinel-1 RTC-style item (the Planetary Computer's sentinel-1-rtc shape): vv, vh float32 linear power
    gamma0 on the UTM grid, nodata −32768, sar: properties."""
    epsg, left, top = _tile(lon, lat)
    crs, n = f"EPSG:{epsg}", TILE_M // 10
    assets = {}
    for key, value in (("vv", vv), ("vh", vh)):
        path = f"cogs/{item_id}/{key}.tif"
        _cog(server.root / path, np.full((n, n), value, np.float32), crs, from_origin(left, top, 10, 10), -32768)
        assets[key] = {
            "href": f"{server.url}/{path}",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "proj:epsg": epsg,
            "proj:shape": [n, n],
            "proj:transform": [10, 0, left, 0, -10, top],
            "raster:bands": [{"nodata": -32768, "data_type": "float32", "scale": 1.0, "offset": 0.0}],
            "roles": ["data"],
        }
    return _write_item(
        server,
        item_id,
        "sentinel-1-rtc",
        when,
        epsg,
        left,
        top,
        assets,
        {
            "platform": "SENTINEL-1A",
            "constellation": "Sentinel-1",
            "sar:instrument_mode": "IW",
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "GRD",
            "sar:frequency_band": "C",
        },
    )


def _write_item(server, item_id, collection, when, epsg, left, top, assets, props) -> dict:
    w, s, e, n = _bbox(epsg, left, top)
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": collection,
        "bbox": [w, s, e, n],
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "properties": {"datetime": f"{when}T05:10:00Z", "proj:epsg": epsg, **props},
        "assets": assets,
        "links": [],
    }
    (server.root / "items" / f"{item_id}.json").write_text(json.dumps(item))
    return item


LON, LAT = 81.3, 25.2  # UTM 44N


def world(server: Loopback, lon: float = LON, lat: float = LAT) -> None:
    """Four Sentinel-2 items in the window (one too cloudy, one cloudy in the west half by SCL), one outside
    it, and three Sentinel-1 items."""
    s2_item(server, "S2A_44RKR_20251105_0_L2A", "2025-11-05", lon, lat, 2000, 10.0)
    s2_item(server, "S2B_44RKR_20251110_0_L2A", "2025-11-10", lon, lat, 2500, 40.0, west_scl=9)
    s2_item(server, "S2A_44RKR_20251120_0_L2A", "2025-11-20", lon, lat, 3500, 20.0)
    s2_item(server, "S2B_44RKR_20251125_0_L2A", "2025-11-25", lon, lat, 9000, 95.0)  # too cloudy: skipped
    s2_item(server, "S2A_44RKR_20251220_0_L2A", "2025-12-20", lon, lat, 9000, 0.0)  # outside the window
    for day, vv in (("03", 0.05), ("09", 0.1), ("15", 0.2)):
        s1_item(server, f"S1A_IW_GRDH_202511{day}_rtc", f"2025-11-{day}", lon, lat, vv, 0.01)


def settings(server: Loopback, **kw):
    from sandmine.sources import stac

    base = {"url": server.url, "collections": ("sentinel-2-l2a", "sentinel-1-rtc"), "backoff_s": 0.01, "chunk_px": 64}
    base["timeout_s"] = 10.0  # a request the loopback server never answers fails the test within seconds
    return stac.StacSettings(**(base | kw))


def job(date: str = "2025-11-15", lon: float = LON, lat: float = LAT, half_m: float = 300.0):
    """An observation of a 600 m site centred on (lon, lat), straddling the tiles' west/east halves."""
    from sandmine.sources import stac

    dlon, dlat = half_m / 100_000, half_m / 111_000
    bounds = (lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    start, end = stac.window(dt.date.fromisoformat(date), 30)
    who = f"observation 'o1' (site 'betwa_a', {date})"
    return stac.Job("o1", who, bounds, start, end, grid_for_bounds(bounds), {"date": date, "obs_id": "o1"})


BANDS = ["B2", "B3", "B4", "B8", "B11", "VV", "VH", "CLOUD"]


# ------------------------------------------------------------------------------------------------- tests


def test_search_filters_collections_box_and_dates(server):
    from sandmine.sources.stac import catalogue

    world(server)
    s = settings(server)
    j = job()
    items, what = catalogue.search(catalogue.client(s), s, j.bounds, j.start, j.end)
    ids = sorted(i.id for i in items)
    assert "S2A_44RKR_20251220_0_L2A" not in ids and len(ids) == 7  # 4 S2 in the window + 3 S1
    assert server.searches[-1]["datetime"] == "2025-10-31T00:00:00Z/2025-11-29T23:59:59Z"
    assert server.searches[-1]["collections"] == ["sentinel-2-l2a", "sentinel-1-rtc"]
    far = (LON + 1, LAT + 1, LON + 1.01, LAT + 1.01)
    assert catalogue.search(catalogue.client(s), s, far, j.start, j.end)[0] == []
    assert str(what).startswith(f"{server.url}/search collections=['sentinel-2-l2a', 'sentinel-1-rtc'] bbox=[")


def test_optical_skips_items_above_max_cloud(server):
    from sandmine.sources.stac import catalogue

    world(server)
    s = settings(server)
    j = job()
    items, _ = catalogue.search(catalogue.client(s), s, j.bounds, j.start, j.end)
    clear, cloudy = catalogue.optical(items, s)
    assert [i.id[:17] for i in clear] == ["S2A_44RKR_2025110", "S2B_44RKR_2025111", "S2A_44RKR_2025112"]
    assert cloudy == 1
    assert len(catalogue.optical(items, settings(server, max_cloud=100.0))[0]) == 4
    assert [i.id for i in catalogue.radar(items)] == [f"S1A_IW_GRDH_202511{d}_rtc" for d in ("03", "09", "15")]


def test_export_composite_masks_scl_in_project_units_over_byte_ranges(server, tmp_path):
    """Median of the clear items, SCL-cloudy pixels left out, reflectance 0–1 with raster:bands scale/offset,
    Sentinel-1 linear power in dB, CLOUD the share of masked items, read with HTTP Range requests only."""
    from sandmine.sources import stac

    world(server)
    j = job()
    out = stac.export([j], BANDS, settings(server), tmp_path / "cache")
    img = read_image(out["o1"])
    assert img.bands == BANDS and img.grid == j.grid and img.grid.crs.to_epsg() == 32644
    assert img.tags["source"] == "stac" and img.tags["date"] == "2025-11-15" and img.tags["obs_id"] == "o1"
    assert img.tags["stac_items"].count("S2") == 3 and img.tags["stac_items"].count("S1A") == 3
    data = img.data
    west, east = data[:, :, :8], data[:, :, -8:]  # the site straddles the tiles' west/east halves
    for i, b in enumerate(["B2", "B3", "B4", "B8", "B11"]):
        key = next(k for k, (name, _) in S2_KEYS.items() if name == f"B{b[1:].zfill(2)}")
        d = OFFSETS[key]
        # east: median of DN 2000, 2500, 3500 (+ d); west: item 2 is cloud (SCL 9), median of 2000 and 3500
        assert np.allclose(east[i], (2500 + d) * 1e-4 - 0.1, atol=1.5e-4), b
        assert np.allclose(west[i], ((2000 + 3500) / 2 + d) * 1e-4 - 0.1, atol=1.5e-4), b
    # (the per-band DN offsets differ: a band read from the wrong asset fails above)
    vv, vh, cloud = data[5], data[6], data[7]
    assert np.allclose(vv, -10.0, atol=0.01) and np.allclose(vh, -20.0, atol=0.01)  # median 0.1 linear, 0.01
    assert np.allclose(cloud[:, :8], 1 / 3, atol=1e-3) and np.allclose(cloud[:, -8:], 0.0)
    # GDAL fetched the COGs over HTTP Range requests only, and of a large asset only the tiles it needed
    tifs = [p for p in server.ranges if p.endswith(".tif")]
    assert tifs and not [p for p in server.whole if p.endswith(".tif")]
    blue = "cogs/S2A_44RKR_20251105_0_L2A/B02.tif"
    size = (server.root / blue).stat().st_size
    assert server.ranges[blue] >= 2 and server.sent[blue] < size / 3
    assert not any("20251125" in p or "20251220" in p for p in server.sent)  # skipped items are not read
    print(
        f"range requests: {sum(server.ranges.values())} over {len(tifs)} COGs; B02 of one item: "
        f"{server.ranges[blue]} requests, {server.sent[blue]} of {size} bytes"
    )


def test_planetary_computer_shaped_items_give_the_same_composite(server, tmp_path):
    """Asset keys B02…/SCL and no raster:bands (DN / 10 000 − 0.1 from the processing baseline): the same values."""
    from sandmine.sources import stac

    s2_item(server, "pc1", "2025-11-05", LON, LAT, 2000, 10.0, planetary=True)
    s2_item(server, "pc2", "2025-11-10", LON, LAT, 2500, 40.0, west_scl=9, planetary=True)
    s2_item(server, "pc3", "2025-11-20", LON, LAT, 3500, 20.0, planetary=True)
    item = json.loads((server.root / "items" / "pc1.json").read_text())
    assert {"B02", "B11", "SCL"} <= set(item["assets"]) and "raster:bands" not in item["assets"]["B02"]
    img = read_image(stac.export([job()], ["B2", "B11", "CLOUD"], settings(server), tmp_path / "cache")["o1"])
    assert np.allclose(img.data[0][:, -8:], 2500 * 1e-4 - 0.1, atol=1.5e-4)
    assert np.allclose(img.data[1][:, :8], ((2000 + 3500) / 2 + OFFSETS["swir16"]) * 1e-4 - 0.1, atol=1.5e-4)
    assert np.allclose(img.data[2][:, :8], 1 / 3, atol=1e-3)


def test_export_is_cached(server, tmp_path):
    from sandmine.sources import stac

    world(server)
    s = settings(server)
    first = stac.export([job()], ["B2", "CLOUD"], s, tmp_path / "cache")
    searched, read = len(server.searches), sum(server.ranges.values())
    again = stac.export([job()], ["B2", "CLOUD"], s, tmp_path / "cache")
    assert again == first and len(server.searches) == searched and sum(server.ranges.values()) == read


def test_retries_busy_answers_then_succeeds(server, tmp_path):
    """The server answers 503 to the first two searches and the first three COG reads: pystac-client's
    and GDAL's retries with back-off get through."""
    from sandmine.sources import stac

    world(server)
    server.fail = {"search": 2, "tif": 3}
    out = stac.export([job()], ["B2", "VV", "CLOUD"], settings(server, retries=4), tmp_path / "cache")
    assert server.failed == {"search": 2, "tif": 3}
    assert np.allclose(read_image(out["o1"]).data[1], -10.0, atol=0.01)


def test_no_retries_means_a_busy_catalogue_is_an_error(server, tmp_path):
    from sandmine.sources import stac

    world(server)
    server.fail = {"search": 1, "tif": 0}
    with pytest.raises(SandmineError, match="STAC search failed|cannot open the STAC catalogue"):
        stac.export([job()], ["B2"], settings(server, retries=0), tmp_path / "cache")


def test_a_cog_that_stays_busy_is_an_error(server, tmp_path):
    """Without retries a COG read answered 503 fails: the retries above are what got through."""
    from sandmine.sources import stac

    world(server)
    server.fail = {"search": 0, "tif": 1}
    with pytest.raises(SandmineError, match="reading the items' COGs failed") as err:
        stac.export([job()], ["B2"], settings(server, retries=0), tmp_path / "cache")
    assert server.failed["tif"] == 1 and "stac.retries" in str(err.value)


def test_cloud_alone_needs_no_reflectance(server, tmp_path):
    from sandmine.sources import stac

    world(server)
    img = read_image(stac.export([job()], ["CLOUD"], settings(server), tmp_path / "cache")["o1"])
    assert img.bands == ["CLOUD"] and np.allclose(img.data[0][:, -8:], 0.0)
    assert np.allclose(img.data[0][:, :8], 1 / 3, atol=1e-3)


def test_missing_item_names_site_dates_and_search(server, tmp_path):
    from sandmine.sources import stac

    world(server)
    with pytest.raises(SandmineError) as err:
        stac.export([job("2024-01-15")], ["B2", "CLOUD"], settings(server), tmp_path / "cache")
    text = str(err.value)
    assert "observation 'o1' (site 'betwa_a', 2024-01-15)" in text and "no Sentinel-2" in text
    assert "datetime=2023-12-31T00:00:00Z/2024-01-29T23:59:59Z" in text
    assert f"{server.url}/search collections=['sentinel-2-l2a', 'sentinel-1-rtc'] bbox=[81.2" in text
    assert "stac.window_days" in text and not list((tmp_path / "cache").glob("*.tif"))


def test_missing_radar_is_named(server, tmp_path):
    from sandmine.sources import stac

    world(server)
    with pytest.raises(SandmineError, match="no Sentinel-1 \\(VV and VH\\) item"):
        stac.export([job()], ["B2", "VV"], settings(server, collections=("sentinel-2-l2a",)), tmp_path / "c")


def test_too_cloudy_items_are_counted_in_the_error(server, tmp_path):
    from sandmine.sources import stac

    world(server)
    with pytest.raises(SandmineError, match="4 skipped: eo:cloud_cover above stac.max_cloud = 5"):
        stac.export([job()], ["B2"], settings(server, max_cloud=5.0), tmp_path / "cache")


def test_planetary_computer_and_b10_are_refused():
    from sandmine.sources import stac
    from sandmine.sources.stac import catalogue

    with pytest.raises(SandmineError, match="signed URLs"):
        catalogue.check_url("https://planetarycomputer.microsoft.com/api/stac/v1")
    with pytest.raises(SandmineError, match="no B10"):
        stac.check_bands(["B2", "B10"])


def test_scale_offset_without_raster_bands_follows_the_processing_baseline():
    """Planetary Computer Sentinel-2 items carry no scale/offset: DN / 10 000, minus 0.1 from baseline 04.00."""
    from types import SimpleNamespace

    from sandmine.sources.stac import catalogue

    def item(baseline: str, raster_bands: list | None = None) -> SimpleNamespace:  # what pystac.Item offers
        asset = SimpleNamespace(extra_fields={"raster:bands": raster_bands} if raster_bands else {})
        return SimpleNamespace(assets={"B02": asset}, properties={"s2:processing_baseline": baseline})

    assert catalogue.scale_offset(item("05.10"), "B02") == (1e-4, -0.1)
    assert catalogue.scale_offset(item("03.01"), "B02") == (1e-4, 0.0)
    assert catalogue.scale_offset(item("05.10", [{"scale": 2e-4, "offset": 0.5}]), "B02") == (2e-4, 0.5)


# ------------------------------------------------------------------------------------- stages through STAC


def _params(server: Loopback, tmp_path: Path):
    from sandmine.core.config import load_params

    p = load_params(Path(__file__).parents[1] / "params.yaml")
    p.source.kind = "stac"
    p.stac.url, p.stac.collections = server.url, ["sentinel-2-l2a", "sentinel-1-rtc"]
    p.stac.cache_dir, p.stac.backoff_s, p.stac.chunk_px = str(tmp_path / "stac-cache"), 0.01, 64
    p.stac.timeout_s = 10.0
    return p


def test_export_stage_writes_stac_images_and_the_manifest(server, tmp_path):
    from sandmine.core.sites import read_manifest
    from sandmine.sources.synthetic.catalogue import observations_csv, sites_geojson
    from sandmine.steps import export

    world(server)
    sites, obs = tmp_path / "sites.geojson", tmp_path / "observations.csv"
    sites.write_text(json.dumps(sites_geojson([("betwa_a", "Betwa", "Yamuna", LON, LAT, 0.6, 0.6)])))
    obs.write_text(observations_csv(["betwa_a"], ["2025-11-15"], {}))
    p = _params(server, tmp_path)
    p.bands = ["B2", "B3", "B4", "B8", "B11", "VV", "VH", "CLOUD"]
    export.run(p, sites, obs, tmp_path / "images", tmp_path / "source")
    manifest = read_manifest(tmp_path / "images" / "manifest.csv")
    assert [r["source"] for r in manifest] == ["stac"]
    img = read_image(tmp_path / "images" / "betwa_a_2025-11-15.tif", ["B4", "VV"])
    assert img.tags["source"] == "stac" and img.tags["site_id"] == "betwa_a"
    assert np.nanmax(np.abs(img.data[1] + 10.0)) < 0.01 and 0.05 < np.nanmean(img.data[0]) < 0.2
    p.bands = ["B2", "B10"]
    with pytest.raises(SandmineError, match="no B10"):
        export.run(p, sites, obs, tmp_path / "images", tmp_path / "source")
    p.bands, p.stac.url = ["B2"], "https://planetarycomputer.microsoft.com/api/stac/v1"
    with pytest.raises(SandmineError, match="signed URLs") as err:
        export.run(p, sites, obs, tmp_path / "images", tmp_path / "source")
    assert "stac.url" in str(err.value) and "docs/stac.md" in str(err.value)


def test_survey_of_two_chunks_runs_through_stac(server, tmp_path):
    """A river 1.5 km long in 1 km chunks: two chunks × one period, each a composite of the period's items on
    the chunk's grid (with its halo), predicted and written to the GeoPackage."""
    torch = pytest.importorskip("torch")
    import geopandas as gpd
    import pyogrio
    from shapely.geometry import LineString

    from sandmine import models
    from sandmine.steps import survey

    bands = ["B2", "B3", "B4", "B8"]
    lon, lat = 82.51, 24.402
    world(server, lon, lat)
    torch.manual_seed(0)
    model = models.build("resnet18", "unet", bands)
    meta = {"encoder": "resnet18", "decoder": "unet", "bands": bands, "mean": [0.1] * 4, "std": [0.05] * 4}
    torch.save(models.save_checkpoint(model, meta), tmp_path / "model.pt")
    utm = utm_crs(lon, lat)
    x, y = Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(lon, lat)
    x0, y0 = x // 1000 * 1000, y // 1000 * 1000  # a 1.5 km river in two 1 km chunks: x0 + 250 … x0 + 1750
    back = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    line = LineString([back.transform(x0 + 250, y0 + 500), back.transform(x0 + 1750, y0 + 500)])
    gpd.GeoDataFrame({"name": ["Son"]}, geometry=[line], crs="EPSG:4326").to_file(tmp_path / "rivers.geojson")
    p = _params(server, tmp_path)
    p.bands = bands
    p.survey.rivers, p.survey.river_field = str(tmp_path / "rivers.geojson"), "name"
    p.survey.periods, p.survey.chunk_km = ["2025-11-01/2025-11-30"], 1.0
    p.survey.cache_dir, p.aoi.buffer_m = str(tmp_path / "cache"), 200.0
    p.predict.workers, p.predict.threshold, p.predict.window_px, p.predict.stride_px = 0, 0.5, 64, 32
    p.predict.device, p.predict.threads = "cpu", 1
    out = tmp_path / "out"
    counts = survey.run(p, tmp_path / "model.pt", out, tmp_path / "s.html", tmp_path / "s.json")
    assert counts.chunks == 2 and counts.predicted == 2
    cached = sorted((tmp_path / "stac-cache").glob("*.tif"))
    assert len(cached) == 2 and all("_h16_2025-11-01_2025-11-30-" in c.name for c in cached)
    for c in cached:
        img = read_image(c)
        assert img.tags["source"] == "stac" and img.tags["period"] == "2025-11-01_2025-11-30"
        assert img.grid.height == img.grid.width == 100 + 2 * 16
        # the whole period [11-01, 11-30]: items of 11-05, 11-10 and 11-20 (11-25 too cloudy)
        assert img.tags["stac_items"].count("S2") == 3 and img.tags["date_end"] == "2025-11-30"
    assert "chunks" in dict(pyogrio.list_layers(out / "survey.gpkg"))
    searched = len(server.searches)
    survey.run(p, tmp_path / "model.pt", out, tmp_path / "s.html", tmp_path / "s.json")
    assert len(server.searches) == searched  # the second run reads the STAC cache
