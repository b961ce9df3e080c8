"""STAC catalogue search: Sentinel-2 L2A and Sentinel-1 items over a box and dates, with retries."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandmine.core.errors import SandmineError

log = logging.getLogger(__name__)

# Project band -> asset keys, Earth Search first (`blue`, `nir08`, …), then the Planetary Computer's (`B02`, …)
S2_ASSETS = {
    "B1": ("coastal", "B01"),
    "B2": ("blue", "B02"),
    "B3": ("green", "B03"),
    "B4": ("red", "B04"),
    "B5": ("rededge1", "B05"),
    "B6": ("rededge2", "B06"),
    "B7": ("rededge3", "B07"),
    "B8": ("nir", "B08"),
    "B8A": ("nir08", "B8A"),
    "B9": ("nir09", "B09"),
    "B11": ("swir16", "B11"),
    "B12": ("swir22", "B12"),
}
SCL_ASSETS = ("scl", "SCL")
S1_ASSETS = {"VV": ("vv", "VV"), "VH": ("vh", "VH")}
RETRY_STATUS = (429, 500, 502, 503, 504)  # HTTP answers worth another try (busy, gateway, throttled)


@dataclass(frozen=True)
class StacSettings:
    """What to search and how (the `stac` section of params.yaml)."""

    url: str = "https://earth-search.aws.element84.com/v1"
    collections: tuple[str, ...] = ("sentinel-2-l2a", "sentinel-1-grd")
    max_cloud: float = 60.0
    window_days: int = 30
    mask_classes: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)
    max_items: int = 200
    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 60.0
    chunk_px: int = 1024
    threads: int = 4


@dataclass(frozen=True)
class Search:
    """One search of the catalogue, as the error messages name it."""

    url: str
    collections: tuple[str, ...]
    bbox: tuple[float, float, float, float]
    datetime: str

    def __str__(self) -> str:
        box = ", ".join(f"{v:.5f}" for v in self.bbox)
        return f"{self.url}/search collections={list(self.collections)} bbox=[{box}] datetime={self.datetime}"


def window(date: dt.date, days: int) -> tuple[dt.date, dt.date]:
    """[start, end) of a composite of `days` centred on `date`, as the Earth Engine path filters its dates."""
    return date - dt.timedelta(days=days // 2), date + dt.timedelta(days=days - days // 2)


def datetime_range(start: dt.date, end: dt.date) -> str:
    """A STAC datetime interval for the days [start, end) (STAC intervals include both ends)."""
    return f"{start.isoformat()}T00:00:00Z/{(end - dt.timedelta(days=1)).isoformat()}T23:59:59Z"


def check_url(url: str) -> None:
    """Refuse a catalogue this source cannot read: Planetary Computer assets need signed URLs."""
    if "planetarycomputer" in url.lower():
        raise SandmineError(
            "the Planetary Computer's assets need signed URLs (planetary-computer's sign_inplace), "
            "which this source does not do",
            "params.yaml: stac.url",
            "use Earth Search (https://earth-search.aws.element84.com/v1, no account), or sign the items "
            "yourself and serve them from your own STAC API (see docs/stac.md)",
        )
    if not url.startswith(("http://", "https://")):
        raise SandmineError(f"'{url}' is not an http(s) URL", "params.yaml: stac.url", "give the STAC API's root URL")


def client(s: StacSettings) -> Any:
    """A pystac-client Client whose requests retry busy answers with exponential back-off."""
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    check_url(s.url)
    retry = Retry(
        total=s.retries,
        backoff_factor=s.backoff_s,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # POST searches too: a search changes nothing
        raise_on_status=False,
    )
    io = StacApiIO(max_retries=retry, timeout=s.timeout_s)
    try:
        return Client.open(s.url, stac_io=io)
    except Exception as exc:  # requests/pystac errors of many kinds: all mean the catalogue is not reachable
        raise SandmineError(
            f"cannot open the STAC catalogue ({type(exc).__name__}: {exc})",
            "params.yaml: stac.url",
            "check the URL and the network; busy answers were retried "
            f"{s.retries} time(s) (stac.retries, stac.backoff_s)",
        ) from exc


def search(cat: Any, s: StacSettings, bbox: tuple[float, float, float, float], start: dt.date, end: dt.date) -> tuple:
    """(items, search) of every collection over `bbox` (lon/lat) in the days [start, end)."""
    what = Search(s.url.rstrip("/"), s.collections, bbox, datetime_range(start, end))
    try:
        found = cat.search(
            collections=list(s.collections), bbox=list(bbox), datetime=what.datetime, max_items=s.max_items
        )
        items = list(found.items())
    except Exception as exc:  # pystac-client's APIError, requests' errors, a bad answer: the search failed
        raise SandmineError(
            f"the STAC search failed ({type(exc).__name__}: {exc})",
            str(what),
            f"check stac.url and stac.collections; busy answers were retried {s.retries} time(s)",
        ) from exc
    if len(items) >= s.max_items:
        log.warning("%s: stac.max_items = %d items read, more may exist: raise it", what, s.max_items)
    return items, what


def asset_key(item: Any, keys: tuple[str, ...]) -> str | None:
    """The first of `keys` that `item` has as an asset."""
    return next((k for k in keys if k in item.assets), None)


def asset_keys(item: Any, table: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Project band -> the item's asset key, for every band of `table`; an error names a missing one."""
    keys = {band: asset_key(item, names) for band, names in table.items()}
    missing = [f"{band} (asset {' or '.join(table[band])})" for band, key in keys.items() if key is None]
    if missing:
        raise SandmineError(
            f"item '{item.id}' of collection '{item.collection_id}' has no {', '.join(missing)}",
            f"{item.get_self_href() or item.id}",
            "drop those bands from params.yaml 'bands', or use a collection that has them",
        )
    return {band: key for band, key in keys.items() if key is not None}


def is_radar(item: Any) -> bool:
    """Sentinel-1 items carry VV/VH assets; Sentinel-2 items carry reflectance and SCL."""
    return all(asset_key(item, keys) for keys in S1_ASSETS.values())


def optical(items: list, s: StacSettings) -> tuple[list, int]:
    """Sentinel-2 items with an SCL band and `eo:cloud_cover` at most `max_cloud`; and how many were too cloudy."""
    s2 = [i for i in items if not is_radar(i) and asset_key(i, SCL_ASSETS)]
    clear = [i for i in s2 if float(i.properties.get("eo:cloud_cover", 100.0)) <= s.max_cloud]
    return sorted(clear, key=lambda i: (i.datetime, i.id)), len(s2) - len(clear)


def radar(items: list) -> list:
    """Sentinel-1 items in IW mode (when the item says) with both VV and VH."""
    s1 = [i for i in items if is_radar(i) and i.properties.get("sar:instrument_mode", "IW") == "IW"]
    return sorted(s1, key=lambda i: (i.datetime, i.id))


def scale_offset(item: Any, key: str) -> tuple[float, float]:
    """Physical value = DN × scale + offset, from the asset's `raster:bands`; Sentinel-2 items without it
    (the Planetary Computer's) are DN / 10 000 with the −1000 offset of processing baseline 04.00 on."""
    bands = item.assets[key].extra_fields.get("raster:bands") or [{}]
    scale, offset = bands[0].get("scale"), bands[0].get("offset")
    if scale is not None:
        return float(scale), float(offset or 0.0)
    if is_radar(item):
        return 1.0, 0.0
    baseline = str(item.properties.get("s2:processing_baseline", "00.00"))
    return 1e-4, (-0.1 if baseline >= "04.00" else 0.0)


def missing(what: Search, who: str, kind: str, s: StacSettings, cloudy: int = 0) -> SandmineError:
    """The error for an observation the catalogue has no usable item for."""
    also = f" ({cloudy} skipped: eo:cloud_cover above stac.max_cloud = {s.max_cloud:g})" if cloudy else ""
    return SandmineError(
        f"{who}: the catalogue has no {kind} item for {what.datetime}{also}",
        str(what),
        "widen stac.window_days, raise stac.max_cloud, check stac.collections against the catalogue, "
        "or pick another date",
    )
