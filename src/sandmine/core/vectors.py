"""Vector files a user points sandmine at (rivers, regions): one layer, any format and CRS, in EPSG:4326."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pyproj import Geod
from shapely.geometry.base import BaseGeometry

from sandmine.core.errors import SandmineError

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)


def read_vectors(path: str | Path, what: str, key: str, layer: str = "", layer_key: str = "") -> gpd.GeoDataFrame:
    """The features of one layer of the vector file `path` (any format and CRS GeoPandas reads), in EPSG:4326.

    A file of one layer with geometry is read whole (tables without geometry, such as the styles QGIS
    saves into a GeoPackage, are not counted). A file of several needs `layer`: reading the first and
    dropping the others would leave part of what the user drew out without a word. Features without a
    geometry are left out, and the log says which. `what` names the file's role in messages ("rivers",
    "region"), `key` the param that names the file, `layer_key` the one that names its layer ("" when
    there is none).

    Raises:
        SandmineError: the file is missing or unreadable, holds several layers with none chosen (lists
            them), lacks the chosen layer, has no CRS, or a feature crosses the antimeridian.
    """
    import geopandas as gpd
    import pyogrio

    path = Path(path).expanduser()
    where = str(path)
    if not path.exists():
        raise SandmineError(f"{what} file not found", where, f"fix '{key}' in params.yaml")
    try:
        listed = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise SandmineError(f"not a vector file GeoPandas can read ({exc})", where) from exc
    # tables without geometry (QGIS keeps a GeoPackage's styles in `layer_styles`) hold no features to read
    layers = [str(name) for name, kind in listed if kind is not None] or [str(name) for name, _ in listed]
    choose = (
        f"set '{layer_key}' in params.yaml to the layer that holds the {what}"
        if layer_key
        else f"save the layer that holds the {what} as a file of its own (QGIS: Export > Save Features As…)"
    )
    if layer and layer not in layers:
        raise SandmineError(f"no layer '{layer}' in the {what} file (layers: {_listed(path, layers)})", where, choose)
    if not layer and len(layers) > 1:
        raise SandmineError(
            f"the {what} file holds {len(layers)} layers ({_listed(path, layers)}) and only one is read",
            where,
            choose,
        )
    try:
        frame = gpd.read_file(path, layer=layer or layers[0])
    except Exception as exc:
        raise SandmineError(f"not a vector file GeoPandas can read ({exc})", where) from exc
    if frame.crs is None:
        raise SandmineError(f"{what} file has no CRS", where, "save it with its CRS (e.g. from QGIS)")
    empty = frame.geometry.isna() | frame.geometry.is_empty
    if empty.any():
        rows = [int(i) + 1 for i in frame.index[empty]]
        log.warning(
            "%s: %d of %d feature(s) have no geometry and are left out (features %s, counting from 1)",
            where, len(rows), len(frame), few(rows),
        )  # fmt: skip
    frame = frame[~empty].to_crs("EPSG:4326")
    bounds = frame.geometry.bounds
    wide = [int(i) + 1 for i in frame.index[(bounds.maxx - bounds.minx) > 180.0]]
    if wide:  # a line from 179.9° to -179.9° reads as one around the world: every UTM zone would be surveyed
        raise SandmineError(
            f"feature(s) {few(wide)} (counting from 1) span more than 180° of longitude: they cross the antimeridian "
            "(180°), or the file's CRS is not the one its coordinates are in",
            where,
            "split those features at 180° (QGIS: Vector > Geoprocessing > Split with Lines, or draw them in two parts)",
        )
    return frame


def _listed(path: Path, layers: list[str]) -> str:
    """Layers with their feature counts and geometry types, for messages."""
    import pyogrio

    out = []
    for name in layers:
        try:
            info = pyogrio.read_info(path, layer=name)
            out.append(f"'{name}': {info['features']} {info['geometry_type'] or 'non-spatial'}")
        except Exception:  # a layer GDAL cannot describe is still listed
            out.append(f"'{name}'")
    return ", ".join(out)


def few(items: list[int], n: int = 10) -> str:
    """Up to `n` numbers for a message, and how many more."""
    shown = ", ".join(map(str, items[:n]))
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


_GEOD = Geod(ellps="WGS84")


def extent(geom: BaseGeometry) -> tuple[float, float]:
    """(km of line, km² of area) of an EPSG:4326 geometry on the WGS 84 ellipsoid: lines count their
    length, polygons their area (a river drawn as its water surface)."""
    parts = list(getattr(geom, "geoms", [geom]))
    km = sum(_GEOD.geometry_length(g) for g in parts if g.geom_type in ("LineString", "LinearRing")) / 1000.0
    km2 = sum(abs(_GEOD.geometry_area_perimeter(g)[0]) for g in parts if g.geom_type == "Polygon") / 1e6
    nested = [g for g in parts if hasattr(g, "geoms")]  # a collection inside a collection
    for g in nested:
        k, a = extent(g)
        km, km2 = km + k, km2 + a
    return km, km2


def rivers_geojson(path: Path, layer: str) -> dict:
    """A user's vector file of rivers (any CRS; `layer` of a GeoPackage) as GeoJSON in EPSG:4326."""
    import json

    frame = read_vectors(path, "rivers", "source.rivers_file", layer, "source.rivers_layer")
    km, km2 = (sum(v) for v in zip(*(extent(g) for g in frame.geometry), strict=True)) if len(frame) else (0, 0)
    log.info("rivers: %d feature(s) of %s: %.1f km of line, %.1f km² of polygons", len(frame), path, km, km2)
    return json.loads(frame.to_json())
