"""Local sources: the user's own GeoTIFFs, Sentinel-2 products as ESA delivers them (SAFE
folders), and label polygons as GeoJSON files drawn in any CRS (e.g. in QGIS).

A SAFE product has one JPEG 2000 file per band at 10, 20 or 60 m
(`GRANULE/*/IMG_DATA/R10m/*_B02_10m.jp2` for L2A, `GRANULE/*/IMG_DATA/*_B02.jp2` for L1C).
`stack_safe` resamples every band onto one 10 m grid (bilinear) in the band order asked for and
converts digital numbers to reflectance with the product's quantification value and offset
(`MTD_MSIL2A.xml` / `MTD_MSIL1C.xml`; processing baseline 04.00 and later subtract 1000).
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS as PyprojCRS
from pyproj.exceptions import CRSError
from rasterio.warp import Resampling, reproject
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from sandmine.core.bands import CATALOGUE, S2_L2A
from sandmine.core.config import ConfidenceParams
from sandmine.core.errors import SandmineError
from sandmine.core.raster import Grid, crs_units, grid_for_bounds, ground_pixel_m, read_grid, to_crs
from sandmine.core.schema import Annotation, LabelRow, geometry_parts, polygon_parts, repaired
from sandmine.core.sites import Observation, Site
from sandmine.sources.base import (
    ChunkImage,
    ChunkImages,
    Runner,
    Source,
    SurveyChunk,
    SurveyPeriod,
    SurveyRiver,
    cache_key,
    check_one_zone,
    write_manifest,
)

log = logging.getLogger(__name__)

_BAND_FILE = re.compile(r"_(B\d[\dA])(?:_(\d+)m)?\.jp2$")


def safe_bands(safe: Path) -> dict[str, list[Path]]:
    """The band files of a SAFE folder, by band name (B8A, B02 -> B2), finest resolution first."""
    if not safe.is_dir():
        raise SandmineError("SAFE folder not found", str(safe))
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(safe.glob("GRANULE/*/IMG_DATA/**/*.jp2")):
        m = _BAND_FILE.search(path.name)
        if not m:
            continue
        name = m.group(1)
        name = name if name == "B8A" else f"B{int(name[1:])}"
        res = int(m.group(2)) if m.group(2) else CATALOGUE[name].resolution_m
        found.setdefault(name, []).append((res, path))
    return {k: [p for _, p in sorted(v)] for k, v in found.items()}


def _level(safe: Path) -> str:
    """`L2A` or `L1C` from a SAFE folder's metadata file or name ("" when neither says)."""
    for level in ("L2A", "L1C"):
        if (safe / f"MTD_MSI{level}.xml").exists() or f"MSI{level}" in safe.name:
            return level
    return ""


def quantification(safe: Path) -> tuple[float, dict[str, float]]:
    """(quantification value, offset per band name) from the product metadata.

    Defaults when the metadata is absent: 10000 and no offset (baseline before 04.00).
    """
    mtd = next(iter(sorted(safe.glob("MTD_MSIL*.xml"))), None)
    if mtd is None:
        return 10_000.0, {}
    root = ET.parse(mtd).getroot()
    value = 10_000.0
    offsets: dict[str, float] = {}
    for el in root.iter():
        tag = el.tag.split("}")[-1]
        if tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and el.text:
            value = float(el.text)
        if tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text:
            band_id = int(el.get("band_id", "-1"))
            order = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
            if 0 <= band_id < len(order):
                offsets[order[band_id]] = float(el.text)
    return value, offsets


def stack_safe(safe: Path, bands: list[str], grid: Grid | None = None) -> tuple[np.ndarray, Grid]:
    """(C, H, W) float32 reflectance of `bands` on `grid` (default: the product's 10 m grid of B2).

    Raises:
        SandmineError: the folder lacks a band asked for (names the band and the folder).
    """
    files = safe_bands(safe)
    never = [b for b in bands if b not in files and b not in S2_L2A and b not in ("B10",)]
    if never:  # Sentinel-1 backscatter and the cloud score are other products, never in a Sentinel-2 SAFE
        raise SandmineError(
            f"band(s) {never} are not Sentinel-2 bands: a Sentinel-2 SAFE product never has them",
            str(safe),
            f"drop {never} from 'bands' and 'model.bands' in params.yaml (and re-run the train stage), or export "
            "images that hold them (source.kind: gee) as GeoTIFFs",
        )
    if "B10" in bands and "B10" not in files and _level(safe) == "L2A":
        raise SandmineError(
            "band B10 (cirrus) is not in Sentinel-2 L2A products: atmospheric correction drops it",
            str(safe),
            "drop B10 from 'bands' and 'model.bands' in params.yaml, or use the L1C product (MSIL1C)",
        )
    missing = [b for b in bands if b not in files]
    if missing:
        raise SandmineError(
            f"SAFE product has no file for band(s) {missing} (it has {sorted(files)})",
            str(safe),
            "download the complete product (its GRANULE/*/IMG_DATA holds one .jp2 per band), "
            "or drop those bands from 'bands' and 'model.bands'",
        )
    if grid is None:
        ref = files.get("B2", files[bands[0]])[0]
        with rasterio.open(ref) as src:
            if abs(src.transform.a - 10) > 1e-6:
                raise SandmineError("the reference band is not at 10 m", str(ref))
            grid = Grid(src.crs, src.transform, src.height, src.width)
    value, offsets = quantification(safe)
    out = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
    for i, band in enumerate(bands):
        with rasterio.open(files[band][0]) as src:
            dn = src.read(1).astype(np.float32)
            dn[dn == 0] = np.nan  # 0 is nodata in Sentinel-2 products
            _resample(dn, Grid(src.crs, src.transform, src.height, src.width), out[i], grid)
        out[i] = (out[i] + offsets.get(band, 0.0)) / value
    return out, grid


def read_geotiff(path: Path, bands: list[str], grid: Grid) -> np.ndarray:
    """A user's GeoTIFF with named bands, in export units, resampled onto `grid` (NaN nodata)."""
    from sandmine.core.raster import ImageReader

    with ImageReader(path, bands) as reader:
        data = reader.read_rows(0, reader.grid.height)
        src_grid = reader.grid
    if src_grid == grid:
        return data
    _say_resampling(path, src_grid, grid)
    out = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
    for i in range(len(bands)):
        _resample(data[i], src_grid, out[i], grid)
    return out


def _say_resampling(path: Path, src: Grid, dst: Grid) -> None:
    """A log line when a user's image is reprojected onto the site's grid; a warning when its pixels
    are much coarser than the grid's (the model is trained on 10 m: resampling invents no detail)."""
    if src.crs != dst.crs:
        log.info(
            "%s: reprojected from %s (%s) to the site's UTM grid %s at %g m",
            path, src.crs.to_string(), crs_units(src.crs), dst.crs.to_string(), dst.res_m,
        )  # fmt: skip
    gx, gy = ground_pixel_m(src)
    if max(gx, gy) > 1.5 * dst.res_m:
        log.warning(
            "%s: pixels of %.1f × %.1f m on the ground, resampled to the %g m the model is trained on: "
            "its maps will be blurrier than from a %g m image (small mines lost)",
            path, gx, gy, dst.res_m, dst.res_m,
        )  # fmt: skip


def _resample(src: np.ndarray, src_grid: Grid, dst: np.ndarray, grid: Grid) -> None:
    """Bilinear resampling of one band onto `grid`, NaN as nodata on both sides."""
    reproject(
        src,
        dst,
        src_transform=src_grid.transform,
        src_crs=src_grid.crs,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        resampling=Resampling.bilinear,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )


_GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                   "GeometryCollection"}  # fmt: skip
_SAVE_AS = "save it as GeoJSON (e.g. QGIS: Export > Save Features As… > GeoJSON)"


def geojson_labels(path: Path, obs_id: str) -> LabelRow:
    """Polygons of one observation from a GeoJSON file, as a label row in EPSG:4326 lon/lat.

    Accepts a FeatureCollection, a bare list of features or a single Feature (features with or
    without `"type": "Feature"`). The legacy `crs` member (as QGIS and ogr2ogr write it) names the
    CRS; without it coordinates are EPSG:4326 [lon, lat] (RFC 7946). Property keys and values are
    case-insensitive: `class` (or `label`, default `mine`) and `confidence` (one of
    `ConfidenceParams`, default `high`). Points and lines are skipped with a problem line.

    Raises:
        SandmineError: the file is empty or not GeoJSON, a feature or its CRS is unreadable, or a
            confidence is unknown (names the file and the feature index).
    """
    if path.exists() and path.stat().st_size == 0:
        raise SandmineError(
            "label file is empty",
            str(path),
            "write a GeoJSON FeatureCollection (with no features if there is no mining), or remove the file",
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM from Windows tools is harmless
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SandmineError(f"not valid JSON ({exc})", str(path), _SAVE_AS) from exc
    crs = _geojson_crs(doc, path)
    confidences = [f.name for f in fields(ConfidenceParams)]
    row = LabelRow(obs_id, "done")
    for k, feat in enumerate(_geojson_features(doc, path)):
        if not isinstance(feat, dict) or feat.get("type", "Feature") not in ("Feature", *_GEOMETRY_TYPES):
            raise SandmineError(f"feature {k} is not a GeoJSON Feature ({str(feat)[:60]})", str(path), _SAVE_AS)
        bare = feat.get("type") in _GEOMETRY_TYPES  # a geometry standing in for a feature
        geometry = feat if bare else feat.get("geometry")
        raw = {} if bare else feat.get("properties") or {}
        if not isinstance(raw, dict):
            raise SandmineError(f"feature {k} has properties that are not an object", str(path), _SAVE_AS)
        props = {str(key).strip().lower(): v for key, v in raw.items()}
        cls = str(props.get("class") or props.get("label") or "mine").strip().lower()
        conf = str(props.get("confidence") or "high").strip().lower()
        if conf not in confidences:
            raise SandmineError(
                f"feature {k} has unknown confidence '{props.get('confidence')}'",
                str(path),
                f"use one of {', '.join(confidences)} (any case), or leave it out for high",
            )
        if not geometry:
            row.problems.append(f"feature {k} has no geometry; skipped")
            continue
        try:
            geom = shape(geometry)
        except Exception as exc:  # noqa: BLE001 - any shapely error is the user's geometry
            raise SandmineError(
                f"feature {k} has a geometry that is not valid GeoJSON ({exc})", str(path), _SAVE_AS
            ) from exc
        kind = geom.geom_type
        if kind in ("Point", "MultiPoint", "LineString", "MultiLineString"):
            row.problems.append(f"feature {k} is a {kind}, not a polygon; skipped")
            continue
        polygons = polygon_parts(geom)
        if kind == "GeometryCollection" and len(polygons) < len(geometry_parts(geom)):
            n = len(geometry_parts(geom)) - len(polygons)
            row.problems.append(f"feature {k} is a GeometryCollection: its {n} non-polygon part(s) skipped")
        if polygons and not all(p.is_valid for p in polygons):
            polygons = repaired(polygons)
            row.problems.append(f"feature {k} was self-intersecting; repaired")
        polygons = [p for p in polygons if p.area > 0]
        if not polygons:
            row.problems.append(f"feature {k} has no polygon with area; skipped")
            continue
        geom = one_area(polygons)
        if crs != "EPSG:4326":
            geom = to_crs(geom, crs, "EPSG:4326")
        row.annotations.append(Annotation(cls, geom, conf, in_pixels=False))
    return row


def _geojson_crs(doc: object, path: Path) -> str:
    """The CRS named by a GeoJSON document's legacy `crs` member; EPSG:4326 without one (RFC 7946)."""
    member = doc.get("crs") if isinstance(doc, dict) else None
    if not member:
        return "EPSG:4326"
    props = member.get("properties") if isinstance(member, dict) else None
    props = props if isinstance(props, dict) else {}
    name = props.get("name") or (f"EPSG:{props['code']}" if "code" in props else None)  # 2008 spec: type EPSG
    try:
        crs = PyprojCRS.from_user_input(str(name))
    except CRSError as exc:
        raise SandmineError(
            f"unknown CRS {name or json.dumps(member)!r} in the 'crs' member",
            str(path),
            'name it as QGIS does ({"type": "name", "properties": {"name": "EPSG:32644"}}), '
            "or save the file in EPSG:4326 without a 'crs' member",
        ) from exc
    if crs.equals(PyprojCRS("OGC:CRS84")) or crs.to_epsg() == 4326:
        return "EPSG:4326"  # read [lon, lat] either way, as GDAL writes it
    return crs.to_wkt()


def _geojson_features(doc: object, path: Path) -> list:
    """The features of a FeatureCollection (typed or not), a bare list, or a single Feature/geometry."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        if "features" in doc:
            if not isinstance(doc["features"], list):
                raise SandmineError("'features' is not a list", str(path), _SAVE_AS)
            return doc["features"]
        if "geometry" in doc or doc.get("type") in ("Feature", *_GEOMETRY_TYPES):
            return [doc]
    raise SandmineError("not a GeoJSON FeatureCollection, list of features or Feature", str(path), _SAVE_AS)


def one_area(polygons: list[Polygon]) -> BaseGeometry:
    """One geometry of valid polygons: the polygon, their multi-polygon, or their union where parts overlap
    (empty for none). The Labelbox reader assembles its repaired parts the same way."""
    if not polygons:
        return Polygon()
    geom = polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)
    return geom if geom.is_valid else unary_union(polygons)


def write_image(path: Path, data: np.ndarray, bands: list[str], grid: Grid, tags: dict[str, str]) -> None:
    """Write physical-unit bands as the pipeline's int16 COG (see `sources.stored`)."""
    from sandmine.core.raster import write_cog
    from sandmine.sources.stored import NODATA, store

    stored, scales = store(data, bands)
    write_cog(path, stored, grid, bands, tags, nodata=NODATA, scales=scales, resampling="average")


def import_observation(folder: Path, obs_id: str, bands: list[str], grid: Grid) -> tuple[np.ndarray, str]:
    """The bands of one observation from `folder/{obs_id}.SAFE` or `folder/{obs_id}.tif`, on `grid`."""
    safe, tif = folder / f"{obs_id}.SAFE", folder / f"{obs_id}.tif"
    if safe.is_dir():
        return stack_safe(safe, bands, grid)[0], "safe"
    if tif.exists():
        return read_geotiff(tif, bands, grid), "geotiff"
    raise SandmineError(
        f"no image for observation '{obs_id}'",
        str(folder),
        f"put {obs_id}.tif (bands named B2, B3, …) or the product folder {obs_id}.SAFE there",
    )


class LocalSource(Source):
    """A user's own files (source.kind: local): `{obs_id}.tif` / `.SAFE` per observation, and per survey
    period a folder `<START_END>/` of scenes."""

    kind = "local"

    def covers(self) -> str:
        return f"the images in 'source.images_dir' ({self.p.source.images_dir}) cover the site"

    def _folder(self, what: str) -> Path:
        if not self.p.source.images_dir:
            raise SandmineError("'source.images_dir' is empty", "params.yaml", f"name the folder of your {what}")
        return Path(self.p.source.images_dir).expanduser()

    def image_extent(self, obs_id: str) -> str:
        user = Path(self.p.source.images_dir).expanduser() / f"{obs_id}.tif"
        if not user.is_file():
            return ""
        g = read_grid(user)
        w, s, e, n = to_crs(box(*g.bounds), g.crs, "EPSG:4326").bounds
        return f"{user.name} covers lon {w:.4f}…{e:.4f}, lat {s:.4f}…{n:.4f}"

    def export_observations(
        self,
        sites: dict[str, Site],
        observations: list[Observation],
        images_dir: Path,
        source_dir: Path,
        previews_dir: Path | None,
    ) -> None:
        """The user's GeoTIFFs or SAFE products, on each site's UTM grid at 10 m."""
        from tqdm import tqdm

        folder = self._folder("images")
        for sid, site in sites.items():
            check_one_zone(sid, site.geometry.bounds)
        grids = {sid: grid_for_bounds(site.geometry.bounds) for sid, site in sites.items()}
        for o in tqdm(sorted(observations, key=lambda o: o.obs_id), desc="export (local)", unit="obs"):
            data, kind = import_observation(folder, o.obs_id, self.p.bands, grids[o.site_id])
            tags = {"source": f"local-{kind}", "date": o.date.isoformat(), "obs_id": o.obs_id}
            write_image(images_dir / f"{o.obs_id}.tif", data, self.p.bands, grids[o.site_id], tags)
        write_manifest(observations, grids, images_dir, "local")
        self.write_rivers(sites, source_dir)

    def export_chunks(
        self,
        rivers: Sequence[SurveyRiver],
        chunks: Sequence[SurveyChunk],
        periods: Sequence[SurveyPeriod],
        halo_px: int,
        cache: Path,
        run: Runner,
    ) -> ChunkImages:
        """Scenes of `source.images_dir/<START_END>/*.tif` (named bands, any CRS) mosaicked onto each
        chunk's grid: the first scene (by name) with a valid pixel wins."""
        from tqdm import tqdm

        bands = self.p.bands
        root = self._folder("period folders")
        out: ChunkImages = {}
        for q in periods:
            folder = root / q.label
            scenes = sorted(folder.glob("*.tif")) if folder.is_dir() else []
            if not scenes:
                raise SandmineError(
                    f"period {q.start}/{q.end} has no imagery: no scene in {folder}",
                    "params.yaml: survey.periods",
                    f"put the period's GeoTIFFs (bands named B2, B3, …) in {folder}",
                )
            footprints = []
            for s in scenes:
                g = read_grid(s)
                footprints.append((s, to_crs(box(*g.bounds), g.crs, "EPSG:4326")))
            files = [(str(s), s.stat().st_mtime_ns, s.stat().st_size) for s in scenes]
            key = cache_key({"bands": bands, "scenes": files, "halo_px": halo_px})
            for c in tqdm(chunks, desc=f"export (local {q.label})", unit="chunk"):
                img = cache / "images" / key / q.label / f"{c.chunk_id}.tif"
                out[(c.chunk_id, q.label)] = ChunkImage(img, None, img.exists())
                if img.exists():
                    continue
                box4326 = box(*c.bounds_4326(halo_px))
                grid = c.grid_with(halo_px)
                data = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
                for s, fp in footprints:
                    if fp.intersects(box4326):
                        part = read_geotiff(s, bands, grid)
                        hole = np.isnan(data)
                        data[hole] = part[hole]
                write_image(img, data, bands, grid, {"source": "local-geotiff", "date": q.middle.isoformat()})
        return out
