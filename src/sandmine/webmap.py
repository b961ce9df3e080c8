"""The map report: one self-contained Leaflet page (works offline) of imagery, predictions and change per site."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import math
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from rasterio.crs import CRS  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from rasterio.warp import Resampling, reproject, transform_bounds  # noqa: E402
from shapely.geometry import box, mapping  # noqa: E402

from sandmine.core.errors import SandmineError  # noqa: E402
from sandmine.core.files import write_text  # noqa: E402
from sandmine.core.raster import Grid, to_crs  # noqa: E402
from sandmine.core.schema import VERDICT_CLASS  # noqa: E402

log = logging.getLogger(__name__)

SYNTHETIC_BANNER = (
    "SYNTHETIC DATA: these images and labels come from sandmine's embedded world, "
    "not from satellites. Numbers here say nothing about real rivers."
)


LEAFLET_ENV = "SANDMINE_LEAFLET_DIR"  # set by scripts/env.sh: node_modules/leaflet/dist of `npm ci`
MAX_OVERLAY_PX = 1024  # longest side of an image overlay; finer grids are averaged down to it
WEB_MERCATOR = CRS.from_epsg(3857)
BASEMAP = {  # optional, off by default; offline its tiles simply fail and the map stays blank
    "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "attribution": "&copy; OpenStreetMap contributors",
}


def leaflet_assets(folder: Path | None = None) -> tuple[str, str, str]:
    """Leaflet's JavaScript, its CSS with the images it references inlined, and its version.

    Args:
        folder: Leaflet's `dist/` folder (default: `$SANDMINE_LEAFLET_DIR`, which `scripts/env.sh`
            points at the `npm ci` install of package-lock.json).
    """
    if folder is None:
        folder = Path(os.environ.get(LEAFLET_ENV, "")) if os.environ.get(LEAFLET_ENV) else None
    if folder is None or not (folder / "leaflet.js").is_file() or not (folder / "leaflet.css").is_file():
        raise SandmineError(
            "Leaflet (npm leaflet, pinned in package-lock.json) is not installed: the map report inlines it",
            f"${LEAFLET_ENV}={folder}" if folder is not None else f"${LEAFLET_ENV} (unset)",
            "source scripts/env.sh (it runs npm ci once into ~/.cache/sandmine/), or point "
            f"{LEAFLET_ENV} at a folder holding leaflet.js and leaflet.css",
        )
    js = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", (folder / "leaflet.js").read_text())
    css = (folder / "leaflet.css").read_text()

    def inline(m: re.Match[str]) -> str:
        png = (folder / m.group(1)).read_bytes()
        return f"url(data:image/png;base64,{base64.b64encode(png).decode()})"

    css = re.sub(r"url\((images/[\w.-]+\.png)\)", inline, css)
    meta = folder.parent / "package.json"
    version = json.loads(meta.read_text()).get("version", "?") if meta.is_file() else "?"
    return js, css, version


def warp_to_web_mercator(
    grid: Grid, bands: np.ndarray, max_px: int = MAX_OVERLAY_PX
) -> tuple[np.ndarray, np.ndarray, list[list[float]]]:
    """Bands of `grid` warped onto a Web Mercator (EPSG:3857) grid, as Leaflet image overlays need.

    Args:
        grid: the bands' grid (any projected CRS).
        bands: (C, H, W) float32 values.
        max_px: longest side of the result; the grid's own resolution is kept when it fits.

    Returns:
        (C, h, w) float32 warped bands, (h, w) float32 coverage 0–1 (0 outside the source
        footprint), and the overlay's bounds `[[south, west], [north, east]]` in degrees.
    """
    left, bottom, right, top = transform_bounds(grid.crs, WEB_MERCATOR, *grid.bounds, densify_pts=21)
    # the source resolution in Mercator metres at the site's latitude (Mercator stretches by 1 / cos(lat))
    _, south, _, north = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds)
    lat = math.radians((south + north) / 2)
    res = grid.res_m / max(math.cos(lat), 1e-6)
    res = max(res, max(right - left, top - bottom) / max_px)
    width, height = max(1, math.ceil((right - left) / res)), max(1, math.ceil((top - bottom) / res))
    dst_transform = from_origin(left, top, res, res)
    src = np.concatenate([bands.astype(np.float32), np.ones((1, grid.height, grid.width), np.float32)])
    dst = np.zeros((src.shape[0], height, width), np.float32)
    downsampled = res > 1.5 * grid.res_m / max(math.cos(lat), 1e-6)
    reproject(
        src,
        dst,
        src_transform=grid.transform,
        src_crs=grid.crs,
        dst_transform=dst_transform,
        dst_crs=WEB_MERCATOR,
        resampling=Resampling.average if downsampled else Resampling.bilinear,
        src_nodata=None,
        dst_nodata=0.0,
    )
    west, south, east, north = transform_bounds(
        WEB_MERCATOR, "EPSG:4326", left, top - height * res, left + width * res, top
    )
    return dst[:-1], np.clip(dst[-1], 0.0, 1.0), [[south, west], [north, east]]


def _png_uri(rgba: np.ndarray) -> str:
    """A PNG data URI of an (H, W, 4) 0–1 float array."""
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(np.clip(np.rint(rgba * 255), 0, 255).astype(np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def overlays(obs: dict) -> dict:
    """Imagery and probability of one observation as Web Mercator PNG overlays with their bounds.

    No data (NaN in `obs["rgb"]`, see `report.true_colour(keep_nodata=True)`) is transparent in both.
    """
    grid = obs["grid"]
    rgb = np.moveaxis(np.asarray(obs["rgb"], np.float32), -1, 0)
    valid = np.asarray(np.isfinite(rgb).all(axis=0), np.float32)
    # warped with the data zeroed where there is none and a band of validity: the average of a web pixel over
    # source pixels with and without data is undone by that band, which also says where to draw nothing
    stack = np.concatenate([np.nan_to_num(rgb) * valid, (obs["q"] / 255.0 * valid)[None], valid[None]])
    warped, _, bounds = warp_to_web_mercator(grid, stack)
    data = warped[4]  # 0 outside the footprint and over no data
    safe = np.maximum(data, 1e-6)
    shown = (data > 0.5).astype(np.float32)
    prob = np.clip(warped[3] / safe, 0, 1)
    imagery = np.dstack([*np.clip(warped[:3] / safe, 0, 1), shown])
    colours = plt.get_cmap("magma")(prob)
    colours[..., 3] = np.clip((prob - 0.2) / 0.6, 0, 1) * 0.85 * shown
    return {"bounds": bounds, "imagery": _png_uri(imagery), "probability": _png_uri(colours)}


def _footprint(grid: Grid) -> dict:
    """The grid's outline as an EPSG:4326 GeoJSON polygon (edges densified: UTM edges curve in Mercator)."""
    left, bottom, right, top = grid.bounds
    outline = shapely.segmentize(box(left, bottom, right, top), max(right - left, top - bottom) / 16)
    return {"type": "Polygon", "coordinates": _rounded(mapping(to_crs(outline, grid.crs, "EPSG:4326"))["coordinates"])}


def _rounded(coords: object) -> object:
    """GeoJSON coordinates to 6 decimals (~0.1 m): a smaller page, no visible change."""
    if isinstance(coords, (list, tuple)):
        if coords and isinstance(coords[0], (int, float)):
            return [round(float(c), 6) for c in coords]
        return [_rounded(c) for c in coords]
    return coords


def _collection(features: list[dict], keep: tuple[str, ...]) -> dict:
    out = []
    for f in features:
        props = {k: f["properties"][k] for k in keep if k in f["properties"]}
        geom = {"type": f["geometry"]["type"], "coordinates": _rounded(f["geometry"]["coordinates"])}
        out.append({"type": "Feature", "properties": props, "geometry": geom})
    return {"type": "FeatureCollection", "features": out}


def _chart_svg(points: list[tuple[str, float]], width: int = 330, height: int = 150) -> str:
    """A small inline SVG line chart of mined area (ha) against date."""
    if not points:
        return ""
    days = np.array([np.datetime64(d, "D").astype(np.int64) for d, _ in points], np.float64)
    vals = np.array([a for _, a in points], np.float64)
    x0, x1 = days.min(), max(days.max(), days.min() + 1)
    top = max(vals.max(), 1e-9) * 1.2
    m = 36
    xs = m + (days - x0) / (x1 - x0) * (width - 2 * m)
    ys = height - m + (-(vals / top)) * (height - 2 * m)
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    labels = "".join(
        f"<circle class='point' cx='{x:.1f}' cy='{y:.1f}' r='4'><title>{html.escape(d)}: {a:.1f} ha</title></circle>"
        f"<text x='{x:.1f}' y='{height - m + 16}' font-size='10' text-anchor='middle'>{html.escape(d)}</text>"
        f"<text x='{x:.1f}' y='{y - 8:.1f}' font-size='10' text-anchor='middle'>{a:.1f}</text>"
        for (d, a), x, y in zip(points, xs, ys)
    )
    return (
        f"<svg class='chart' width='{width}' height='{height}' role='img' aria-label='mined area over time'>"
        f"<line x1='{m}' y1='{height - m}' x2='{width - m}' y2='{height - m}' stroke='#555'/>"
        f"<text x='4' y='14' font-size='11'>mined area (ha)</text>"
        f"<polyline points='{pts}' fill='none' stroke='#c40' stroke-width='2'/>{labels}</svg>"
    )


def _magma_css() -> str:
    """The probability colours (0.2 to 1) as CSS gradient stops, for the legend."""
    return ",".join(to_hex(plt.get_cmap("magma")(v)) for v in np.linspace(0.2, 1, 5))


def _ha(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1f}"


def _site_panel(site: str, obs: list[dict], changes: list[dict], median_ha: float) -> str:
    esc = html.escape
    parts = [
        f"<section class='site' id='site-{esc(site)}' data-site='{esc(site)}'>",
        f"<h2><a href='#' class='zoom' data-site='{esc(site)}'>{esc(site)}</a></h2><div class='dates'>",
    ]
    for i, o in enumerate(obs):
        checked = " checked" if i == len(obs) - 1 else ""
        parts.append(
            f"<label><input type='radio' class='date' name='date-{esc(site)}' data-site='{esc(site)}'"
            f" value='{esc(o['date'])}'{checked}>{esc(o['date'])} ({o['area_ha']:.1f} ha)</label>"
        )
    parts.append("</div>")
    parts.append(_chart_svg([(o["date"], o["area_ha"]) for o in obs]))
    if not math.isnan(median_ha):
        parts.append(f"<p>Temporal median of the probabilities: {median_ha:.1f} ha mined.</p>")
    rows = [c for c in changes if c["site_id"] == site]
    if rows:
        parts.append(
            "<table><tr><th>from</th><th>to</th><th class='new'>new</th><th class='expanded'>expanded</th>"
            "<th class='abandoned'>abandoned</th></tr>"
        )
        for c in rows:
            parts.append(
                f"<tr><td>{esc(c['from'])}</td><td>{esc(c['to'])}</td><td>{c['new']:.1f}</td>"
                f"<td>{c['expanded']:.1f}</td><td>{c['abandoned']:.1f}</td></tr>"
            )
        parts.append("</table><p class='note'>change in ha between consecutive dates</p>")
    parts.append("</section>")
    return "".join(parts)


_ALERT_KEYS = (
    "zone", "period", "previous", "kind", "mine_id", "river", "area_ha", "zone_ha", "grown_ha", "distance_m", "lon",
    "lat", "mean_prob",
)  # fmt: skip


def _alerts_panel(alerts: dict) -> str:
    """The sidebar's list of alerts (zone, period, kind, area) with a link per alert that flies to it."""
    esc = html.escape
    feats = alerts["alerts"]["features"]
    n_zones = len(alerts["zones"]["features"])
    parts = [
        "<section class='alerts' id='alerts'>",
        f"<h2>Alerts: {len(feats)} in {n_zones} protected zone(s)</h2>",
        "<p class='legend'><span style='border:2px dashed #7a00cc'></span>protected zone "
        "<span style='background:#ff0080'></span>alert (new or expanded mine in or near a zone)</p>",
    ]
    if not feats:
        parts.append("<p class='note' id='no-alerts'>No new or expanded mine in or near a zone.</p>")
    else:
        parts.append("<ol>")
        for i, f in enumerate(feats):
            p = f["properties"]
            where = "inside" if p["distance_m"] == 0 else f"{p['distance_m']:.0f} m from"
            parts.append(
                f"<li><a href='#' class='alert-link' data-alert='{i}'>{esc(str(p['zone']))}</a>: "
                f"<span class='alert-kind'>{esc(str(p['kind']))}</span> {p['area_ha']:.1f} ha "
                f"({p['zone_ha']:.1f} ha in the zone, {esc(where)} it), {esc(str(p['period']))}, "
                f"p = {p['mean_prob']:.2f}</li>"
            )
        parts.append("</ol>")
    parts.append("</section>")
    return "".join(parts)


_CSS = """html,body{height:100%;margin:0}
body{display:flex;flex-direction:column;font-family:sans-serif;color:#222}
.banner{background:#b00;color:#fff;padding:.5em .8em;font-weight:bold}
#main{flex:1;display:flex;min-height:0}
#sidebar{width:360px;overflow:auto;padding:0 .8em;border-right:1px solid #aaa;font-size:13px}
#map{flex:1;background:#dfe6ea}
h1{font-size:18px}h2{font-size:15px;margin:.6em 0 .3em}
.site{border-top:1px solid #aaa;margin-top:.8em}
.dates label{display:block}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #999;padding:.1em .4em}
.new{color:#e00}.expanded{color:#f80}.abandoned{color:#0af}
.legend span{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.note{color:#666;font-size:11px;margin:0}
#warning{color:#b00;font-weight:bold}
.leaflet-popup-content table td{border:none;padding:0 .4em 0 0}
.verdicts{margin-top:.4em}.verdicts button,.review-panel button{font-size:12px;margin:2px 2px 0 0;cursor:pointer}
button.chosen{background:#333;color:#fff;border-color:#333}
.review-panel{background:#fff;padding:6px 8px;border-radius:4px;box-shadow:0 1px 5px rgba(0,0,0,.4);font-size:12px;
max-width:250px}
.review-panel table td{border:none;padding:0 .5em 0 0}.review-panel td+td{text-align:right;font-weight:bold}
.review-panel .key{display:inline-block;width:14px;height:9px;border:2px solid;margin-right:5px;vertical-align:middle}
.drawing,.drawing .leaflet-interactive{cursor:crosshair!important}
.drawing .leaflet-overlay-pane .leaflet-interactive{pointer-events:none}
.alerts{border-top:1px solid #aaa;margin-top:.8em}.alerts ol{padding-left:1.6em;margin:.3em 0}
.alerts li{margin:.15em 0}.alert-kind{color:#d0006f;font-weight:bold}"""

_JS = r"""
const DATA = JSON.parse(document.getElementById('sandmine-data').textContent);
const STYLE = {
  mine: {color: '#ffdc00', weight: 2, fillColor: '#ffdc00', fillOpacity: 0.15},
  median: {color: '#fff', weight: 2, dashArray: '5 4', fill: false},
  new: {color: '#e00', weight: 1, fillColor: '#e00', fillOpacity: 0.45},
  expanded: {color: '#f80', weight: 1, fillColor: '#f80', fillOpacity: 0.45},
  abandoned: {color: '#0af', weight: 1, fillColor: '#0af', fillOpacity: 0.45},
  zone: {color: '#7a00cc', weight: 2, dashArray: '8 5', fillColor: '#7a00cc', fillOpacity: 0.06},
  alert: {color: '#ff0080', weight: 4, fillColor: '#ff0080', fillOpacity: 0.5},
};
const LABELS = {area_ha: 'area (ha)', mean_prob: 'mean probability', date: 'date', obs_id: 'observation',
                change: 'change', from: 'from', to: 'to', dates: 'dates', site_id: 'site', period: 'period',
                river: 'river', zone: 'zone', kind: 'alert', previous: 'previous period',
                zone_ha: 'in the zone (ha)', grown_ha: 'new area (ha)', distance_m: 'distance to zone (m)',
                mine_id: 'mine (fid)', lon: 'lon', lat: 'lat'};
// review: a verdict per mine polygon and missed mines drawn by hand, kept in localStorage under the report's key
const VERDICTS = {mine: 'mine', not_mine: 'not a mine', unsure: 'unsure'};
const VSTYLE = {
  mine: {color: '#2ecc40', weight: 3, fillColor: '#2ecc40', fillOpacity: 0.35, dashArray: null},
  not_mine: {color: '#cccccc', weight: 2, fillColor: '#cccccc', fillOpacity: 0.05, dashArray: '4 4'},
  unsure: {color: '#d040f0', weight: 2, fillColor: '#d040f0', fillOpacity: 0.25, dashArray: '2 5'},
  missed: {color: '#00e5ff', weight: 3, fillColor: '#00e5ff', fillOpacity: 0.3, dashArray: null},
};
const STORE_KEY = 'sandmine-review:' + DATA.review.key;
const review = {verdicts: {}, drawn: []};  // polygon id → {verdict, at}; drawn: missed mines
const reviewLayers = {};  // polygon id → {layer, feature, site, d}
let storageOk = true;
try {
  const kept = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
  if (kept && kept.verdicts) { review.verdicts = kept.verdicts; review.drawn = kept.drawn || []; }
} catch (e) { storageOk = false; }
const map = L.map('map', {maxZoom: 19, zoomSnap: 0.25});
map.createPane('imagery').style.zIndex = 350;
map.createPane('probability').style.zIndex = 360;
const basemaps = {'No basemap (offline)': L.layerGroup(),
                  'OpenStreetMap (online)': L.tileLayer(DATA.basemap.url, {maxZoom: 19,
                                                        attribution: DATA.basemap.attribution})};
basemaps['No basemap (offline)'].addTo(map);
const groups = {imagery: L.layerGroup(), probability: L.layerGroup(), mines: L.layerGroup(),
                change: L.layerGroup(), median: L.layerGroup(), outlines: L.layerGroup(), drawn: L.layerGroup(),
                zones: L.layerGroup(), alerts: L.layerGroup()};
const overlays = {'Imagery (true colour)': groups.imagery, 'Mine probability': groups.probability,
                  'Mine polygons': groups.mines, 'Change since the previous date': groups.change,
                  'Temporal median polygons': groups.median, 'Site outlines': groups.outlines,
                  'Missed mines (drawn in review)': groups.drawn};
if (DATA.alerts)
  Object.assign(overlays, {'Protected zones': groups.zones, 'Alerts (new mines in zones)': groups.alerts});
['imagery', 'probability', 'mines', 'change', 'outlines', 'drawn', 'zones', 'alerts'].forEach(
  k => groups[k].addTo(map));
L.control.layers(basemaps, overlays, {collapsed: false}).addTo(map);
L.control.scale({imperial: false, maxWidth: 200}).addTo(map);

function popup(props, title) {
  const box = document.createElement('div');
  const h = document.createElement('b'); h.textContent = title; box.appendChild(h);
  const t = document.createElement('table');
  for (const [k, v] of Object.entries(props)) {
    const tr = t.insertRow(); tr.insertCell().textContent = LABELS[k] || k;
    tr.insertCell().textContent = (k === 'area_ha') ? Number(v).toFixed(2) + ' ha' : String(v);
  }
  box.appendChild(t); return box;
}
function minePopup(id) {
  const r = reviewLayers[id];
  const box = popup(r.feature.properties, 'mine, ' + r.d.date);
  const bar = document.createElement('div'); bar.className = 'verdicts';
  bar.appendChild(document.createTextNode('Review: '));
  for (const [v, label] of Object.entries(VERDICTS)) {
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'verdict'; b.dataset.verdict = v; b.textContent = label;
    b.classList.toggle('chosen', (review.verdicts[id] || {}).verdict === v);
    b.addEventListener('click', () => {
      setVerdict(id, v); bar.querySelectorAll('button').forEach(x => x.classList.toggle('chosen', x === b));
    });
    bar.appendChild(b);
  }
  box.appendChild(bar); return box;
}
function mines(s, d) {
  return L.geoJSON(d.mines, {onEachFeature: (f, layer) => {
    const id = s.id + '|' + d.obs_id + '|' + d.mines.features.indexOf(f);
    reviewLayers[id] = {layer: layer, feature: f, site: s.id, d: d};
    layer.setStyle(review.verdicts[id] ? VSTYLE[review.verdicts[id].verdict] : STYLE.mine);
    layer.bindPopup(() => minePopup(id));
  }});
}
function inRing(ring, x, y) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}
function mineAt(site, obs, ll) {  // the mine polygon of (site, observation) under a point, if any
  return Object.keys(reviewLayers).find(id => {
    const r = reviewLayers[id], g = r.feature.geometry;
    if (r.site !== site || r.d.obs_id !== obs) return false;
    const parts = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
    const inside = ring => inRing(ring, ll.lng, ll.lat);
    return parts.some(rings => inside(rings[0]) && !rings.slice(1).some(inside));
  });
}
function changes(s, d) {  // drawn above the mines: a click on one also reviews the mine polygon beneath it
  return L.geoJSON(d.change, {style: f => STYLE[f.properties.change] || STYLE.new, onEachFeature: (f, layer) => {
    let at = null;
    layer.on('click', e => { at = e.latlng; });  // before bindPopup's own handler: the content knows the point
    layer.bindPopup(() => {
      const box = popup(f.properties, f.properties.change + ' mining');
      const id = at && mineAt(s.id, d.obs_id, at);
      if (id) { box.appendChild(document.createElement('hr')); box.appendChild(minePopup(id)); }
      return box;
    });
  }});
}
function polygons(fc, style, title) {
  return L.geoJSON(fc, {
    style: f => (typeof style === 'function' ? style(f) : style),
    onEachFeature: (f, layer) => layer.bindPopup(popup(f.properties, title(f))),
  });
}
const sites = {};
let allBounds = null;
for (const s of DATA.sites) {
  const bounds = L.latLngBounds(s.bounds);
  allBounds = allBounds ? allBounds.extend(bounds) : L.latLngBounds(s.bounds);
  groups.outlines.addLayer(L.geoJSON(s.outline, {style: {color: '#333', weight: 1, fill: false}, interactive: false}));
  groups.outlines.addLayer(L.tooltip({permanent: true, direction: 'top', className: 'site-label'})
    .setLatLng([bounds.getNorth(), bounds.getCenter().lng]).setContent(s.id));
  if (s.median) groups.median.addLayer(polygons(s.median, STYLE.median, () => 'temporal median'));
  const byDate = {};
  for (const d of s.dates) {
    const img = L.imageOverlay(d.imagery, d.bounds, {pane: 'imagery', alt: 'imagery ' + d.obs_id});
    const prob = L.imageOverlay(d.probability, d.bounds, {pane: 'probability', alt: 'probability ' + d.obs_id});
    byDate[d.date] = {imagery: img, probability: prob,
                      mines: mines(s, d),
                      change: d.change ? changes(s, d) : null};
  }
  sites[s.id] = {bounds: bounds, byDate: byDate, date: null, dates: Object.fromEntries(s.dates.map(d => [d.date, d]))};
  setDate(s.id, s.dates[s.dates.length - 1].date);
}
function setDate(site, date) {
  const s = sites[site];
  if (s.date !== null)
    for (const [k, layer] of Object.entries(s.byDate[s.date])) if (layer) groups[k].removeLayer(layer);
  s.date = date;
  for (const [k, layer] of Object.entries(s.byDate[date])) if (layer) groups[k].addLayer(layer);
}
document.querySelectorAll('input.date').forEach(
  i => i.addEventListener('change', () => setDate(i.dataset.site, i.value)));
document.querySelectorAll('a.zoom').forEach(a => a.addEventListener('click', e => {
  e.preventDefault(); map.fitBounds(sites[a.dataset.site].bounds, {padding: [20, 20]});
}));
if (allBounds) map.fitBounds(allBounds, {padding: [20, 20]}); else map.setView([22, 80], 5);

// alerts: the zones outlined, each alerted polygon in the warning colour, a list in the sidebar whose links fly to
// the polygon and show its period
if (DATA.alerts) {
  groups.zones.addLayer(polygons(DATA.alerts.zones, STYLE.zone, f => 'zone ' + f.properties.zone));
  groups.alerts.addLayer(L.geoJSON(DATA.alerts.alerts, {style: STYLE.alert, onEachFeature: (f, layer) => {
    let at = null;
    layer.on('click', e => { at = e.latlng; });
    layer.bindPopup(() => {  // drawn above the mines: the popup also reviews the mine polygon of the shown period
      const p = f.properties, box = popup(p, 'ALERT: ' + p.kind + ' mine in ' + p.zone);
      for (const [site, s] of Object.entries(sites)) {
        const d = s.dates[s.date], id = at && d.obs_id === p.period && mineAt(site, d.obs_id, at);
        if (id) { box.appendChild(document.createElement('hr')); box.appendChild(minePopup(id)); break; }
      }
      return box;
    });
  }}));
}
function showAlert(i) {
  const p = DATA.alerts.alerts.features[i].properties;
  for (const [id, s] of Object.entries(sites)) {
    const d = Object.values(s.dates).find(x => x.obs_id === p.period);
    if (d && s.bounds.contains([p.lat, p.lon])) {
      setDate(id, d.date);
      document.querySelectorAll('input.date').forEach(x => {
        if (x.dataset.site === id) x.checked = x.value === d.date;
      });
    }
  }
  groups.alerts.eachLayer(l => l.bringToFront());  // above the period's mine polygons just shown
  map.flyTo([p.lat, p.lon], 16, {duration: 0.8});
}
document.querySelectorAll('a.alert-link').forEach(a => a.addEventListener('click', e => {
  e.preventDefault(); showAlert(Number(a.dataset.alert));
}));
document.body.dataset.alerts = DATA.alerts ? DATA.alerts.alerts.features.length : 0;

// every image layer is decoded once, shown or not, so a broken one is reported on the page
const uris = DATA.sites.flatMap(s => s.dates.flatMap(d => [d.imagery, d.probability]));
Promise.all(uris.map(u => { const im = new Image(); im.src = u; return im.decode().then(() => true, () => false); }))
  .then(ok => {
    const b = document.body.dataset;
    b.imagesOk = ok.filter(x => x).length; b.imagesFailed = ok.filter(x => !x).length;
    b.polygons = DATA.sites.reduce((n, s) => n + s.dates.reduce((m, d) => m + d.mines.features.length, 0), 0);
    if (Number(b.imagesFailed) > 0)
      document.getElementById('warning').textContent = b.imagesFailed + ' image layer(s) failed to load';
    b.ready = '1';
  });

const CLASS = DATA.review.classes;
function saveReview() {
  try { localStorage.setItem(STORE_KEY, JSON.stringify(review)); } catch (e) { storageOk = false; }
  updatePanel();
}
function setVerdict(id, verdict) {
  review.verdicts[id] = {verdict: verdict, at: new Date().toISOString()};
  reviewLayers[id].layer.setStyle(VSTYLE[verdict]);
  saveReview();
}
function geodesicHa(latlngs) {  // area on the sphere (as Leaflet.draw measures it), in ha
  const r = Math.PI / 180; let a = 0;
  for (let i = 0; i < latlngs.length; i++) {
    const p = latlngs[i], q = latlngs[(i + 1) % latlngs.length];
    a += (q.lng - p.lng) * r * (2 + Math.sin(p.lat * r) + Math.sin(q.lat * r));
  }
  return Math.abs(a * 6378137 * 6378137 / 2) / 1e4;
}
function addDrawn(rec) {
  const layer = L.polygon(rec.ring.slice(0, -1).map(([lng, lat]) => [lat, lng]), VSTYLE.missed);
  layer.bindPopup(() => {
    const box = popup({area_ha: rec.area_ha, date: rec.date, obs_id: rec.obs_id}, 'missed mine (drawn)');
    const b = document.createElement('button'); b.type = 'button'; b.className = 'delete'; b.textContent = 'delete';
    b.addEventListener('click', () => {
      review.drawn = review.drawn.filter(x => x.id !== rec.id); groups.drawn.removeLayer(layer); saveReview();
    });
    box.appendChild(b); return box;
  });
  groups.drawn.addLayer(layer);
}
// drawing a missed mine: a click adds a corner, a double click (or Finish) closes the polygon, Esc cancels
let draft = null;
function startDraw() {
  if (draft) return;
  map.closePopup();
  draft = {latlngs: [], line: L.polyline([], {color: '#00e5ff', weight: 2, dashArray: '4 3', interactive: false}),
           marks: L.layerGroup()};
  draft.line.addTo(map); draft.marks.addTo(map);
  map.getContainer().classList.add('drawing'); map.doubleClickZoom.disable();
  panelState('Click the corners of the missed mine; double-click or Finish to close it, Esc to cancel.');
}
function endDraw(message) {
  if (!draft) return;
  map.removeLayer(draft.line); map.removeLayer(draft.marks); draft = null;
  map.getContainer().classList.remove('drawing'); map.doubleClickZoom.enable();
  panelState(message || '');
}
function finishDraw() {
  if (!draft) return;
  const pts = [];  // the clicks of a double click land on one spot: keep corners at least 4 px apart
  for (const ll of draft.latlngs)
    if (!pts.length || map.latLngToContainerPoint(ll).distanceTo(map.latLngToContainerPoint(pts[pts.length - 1])) >= 4)
      pts.push(ll);
  if (pts.length < 3) { panelState('A polygon needs three corners: click more, or Esc to cancel.'); return; }
  const centre = L.latLngBounds(pts).getCenter();
  const site = Object.keys(sites).find(k => sites[k].bounds.contains(centre));
  if (!site) { endDraw('Not kept: draw a missed mine inside a site.'); return; }
  const d = sites[site].dates[sites[site].date];
  const period = (d.mines.features.find(f => f.properties.period) || {properties: {}}).properties.period;
  const ring = pts.map(p => [+p.lng.toFixed(6), +p.lat.toFixed(6)]); ring.push(ring[0]);
  const rec = {id: 'drawn-' + Date.now().toString(36) + '-' + review.drawn.length, site: site, obs_id: d.obs_id,
               date: d.date, period: period, ring: ring, area_ha: +geodesicHa(pts).toFixed(4),
               at: new Date().toISOString()};
  review.drawn.push(rec); addDrawn(rec); endDraw('Missed mine kept (' + rec.area_ha.toFixed(2) + ' ha).');
  saveReview();
}
map.on('click', e => { if (draft) { draft.latlngs.push(e.latlng); draft.line.addLatLng(e.latlng);
  draft.marks.addLayer(L.circleMarker(e.latlng, {radius: 3, color: '#00e5ff', interactive: false})); } });
map.on('dblclick', () => finishDraw());
document.addEventListener('keydown', e => { if (e.key === 'Escape') endDraw('Drawing cancelled.'); });
// the download: every polygon of each observation the reviewer touched (undecided ones as `ignore`, so an
// unchecked prediction is never learnt as background) and the missed mines; EPSG:4326 GeoJSON
function decisions() {
  const touched = new Set(review.drawn.map(r => r.site + '|' + r.obs_id));
  for (const id of Object.keys(review.verdicts))
    if (reviewLayers[id]) touched.add(reviewLayers[id].site + '|' + reviewLayers[id].d.obs_id);
  const features = [];
  for (const [id, r] of Object.entries(reviewLayers)) {
    if (!touched.has(r.site + '|' + r.d.obs_id)) continue;
    const v = review.verdicts[id], verdict = v ? v.verdict : 'unreviewed', p = r.feature.properties;
    features.push({type: 'Feature', geometry: r.feature.geometry, properties: {
      class: CLASS[verdict], confidence: 'high', verdict: verdict, obs_id: r.d.obs_id, date: r.d.date,
      site_id: r.site, period: p.period, area_ha: p.area_ha, mean_prob: p.mean_prob,
      decided_at: v ? v.at : null, polygon: id}});
  }
  for (const r of review.drawn)
    features.push({type: 'Feature', geometry: {type: 'Polygon', coordinates: [r.ring]}, properties: {
      class: CLASS.missed, confidence: 'high', verdict: 'missed', obs_id: r.obs_id, date: r.date, site_id: r.site,
      period: r.period, area_ha: r.area_ha, mean_prob: null, decided_at: r.at, polygon: r.id}});
  return {type: 'FeatureCollection',
          sandmine_review: {format: 1, report: DATA.review.key, page: DATA.review.name,
                            exported_at: new Date().toISOString()},
          features: features};
}
function download() {
  const blob = new Blob([JSON.stringify(decisions(), null, 1) + '\n'], {type: 'application/geo+json'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = 'review-' + DATA.review.name + '-' + DATA.review.key + '.geojson';
  document.body.appendChild(a); a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
const Panel = L.Control.extend({onAdd: () => {
  const div = L.DomUtil.create('div', 'review-panel');
  div.innerHTML = "<b>Review</b> <span class='note'>(click a polygon)</span><table>" +
    "<tr><td><span class='key' style='border-color:#2ecc40;background:#2ecc4060'></span>mine</td>" +
    "<td id='n-mine'></td></tr>" +
    "<tr><td><span class='key' style='border:2px dashed #999'></span>not a mine</td><td id='n-not_mine'></td></tr>" +
    "<tr><td><span class='key' style='border:2px dotted #d040f0'></span>unsure</td><td id='n-unsure'></td></tr>" +
    "<tr><td><span class='key' style='border-color:#ffdc00'></span>not reviewed</td><td id='n-left'></td></tr>" +
    "<tr><td><span class='key' style='border-color:#00e5ff;background:#00e5ff50'></span>missed (drawn)</td>" +
    "<td id='n-missed'></td></tr></table>" +
    "<button type='button' id='draw'>Draw a missed mine</button> <button type='button' id='finish'>Finish</button> " +
    "<button type='button' id='download'>Download decisions</button><p class='note' id='review-state'></p>";
  L.DomEvent.disableClickPropagation(div); L.DomEvent.disableScrollPropagation(div);
  div.querySelector('#draw').addEventListener('click', startDraw);
  div.querySelector('#finish').addEventListener('click', finishDraw);
  div.querySelector('#download').addEventListener('click', download);
  return div;
}});
new Panel({position: 'bottomleft'}).addTo(map);
function panelState(text) {
  document.getElementById('review-state').textContent = text || (storageOk ? '' :
    'This browser keeps nothing for file:// pages: download the decisions before closing.');
  document.getElementById('finish').hidden = !draft; document.getElementById('draw').hidden = !!draft;
}
function updatePanel() {
  const n = {mine: 0, not_mine: 0, unsure: 0};
  for (const [id, v] of Object.entries(review.verdicts)) if (reviewLayers[id]) n[v.verdict] += 1;
  for (const k of Object.keys(n)) document.getElementById('n-' + k).textContent = n[k];
  const total = Object.keys(reviewLayers).length;
  document.getElementById('n-left').textContent = total - n.mine - n.not_mine - n.unsure;
  document.getElementById('n-missed').textContent = review.drawn.length;
  Object.assign(document.body.dataset, {reviewMine: n.mine, reviewNotMine: n.not_mine, reviewUnsure: n.unsure,
                                        reviewMissed: review.drawn.length});
}
review.drawn.forEach(addDrawn); panelState(''); updatePanel();
window.sandmine = {map, sites, groups, setDate, review, decisions, startDraw, finishDraw, showAlert};
"""


def map_report(
    by_site: dict[str, list[dict]],
    changes: list[dict],
    medians: dict[str, float],
    synthetic: bool,
    path: Path,
    median_features: dict[str, list[dict]] | None = None,
    leaflet_dir: Path | None = None,
    alerts: dict | None = None,
) -> None:
    """A self-contained Leaflet page (no network needed): per site and date the imagery and the
    mine probability as Web Mercator image overlays, mine polygons and change polygons with
    popups, the temporal median polygons, a layer control, a date switch, a scale bar and the
    mined area over time. An OpenStreetMap basemap can be switched on; offline it stays blank.
    A review panel takes a verdict per mine polygon and missed mines drawn by hand, keeps them in
    the browser (localStorage, keyed by a hash of the report's polygons) and downloads them as the
    GeoJSON `review.read_decisions` reads.

    Args:
        by_site: per site its observations in date order, each with obs_id, date, grid, rgb
            ((H, W, 3) 0–1, NaN where there is no data: transparent), q ((H, W) uint8, probability
            × 255), features (mine polygons, EPSG:4326 GeoJSON with area_ha and mean_prob, and
            period / river when the survey has them) and area_ha.
        changes: per pair of consecutive dates: site_id, from, to, new/expanded/abandoned (ha)
            and features (change polygons with `change` and area_ha).
        medians: per site the mined area (ha) of the temporal median.
        synthetic: add the red synthetic-data banner.
        path: the HTML file to write.
        median_features: per site the polygons of the temporal median.
        leaflet_dir: Leaflet's dist/ folder (default `$SANDMINE_LEAFLET_DIR`).
        alerts: `alerts.map_layers`: zones (outlined) and alerts (polygons in a warning colour, listed in
            the sidebar with a link that flies to each); None: no alerts section.
    """
    js, css, version = leaflet_assets(leaflet_dir)
    esc = html.escape
    median_features = median_features or {}
    sites = []
    for site, obs in sorted(by_site.items()):
        dates = []
        for o in obs:
            change = next((c for c in changes if c["site_id"] == site and c["to"] == o["date"]), None)
            dates.append(
                {
                    "date": o["date"],
                    "obs_id": o["obs_id"],
                    **(o.get("overlays") or overlays(o)),
                    "mines": _collection(o["features"], ("area_ha", "mean_prob", "date", "obs_id", "period", "river")),
                    "change": _collection(change["features"], ("change", "area_ha", "from", "to")) if change else None,
                }
            )
        median = median_features.get(site)
        sites.append(
            {
                "id": site,
                "bounds": dates[0]["bounds"],
                "outline": _footprint(obs[0]["grid"]),
                "dates": dates,
                "median": _collection(median, ("area_ha", "mean_prob", "dates")) if median else None,
            }
        )
    # the review's decisions are kept in the browser under this key: the same report opened again finds them,
    # another report (other polygons) does not (file:// pages share one storage)
    polygons = json.dumps([[s["id"], [[d["obs_id"], d["mines"]] for d in s["dates"]]] for s in sites], sort_keys=True)
    key = hashlib.sha256(polygons.encode()).hexdigest()[:16]
    review = {"key": key, "name": path.stem, "classes": VERDICT_CLASS}
    if alerts is not None:
        alerts = {k: _collection(v["features"], tuple(_ALERT_KEYS)) for k, v in alerts.items()}
    data = json.dumps({"sites": sites, "basemap": BASEMAP, "review": review, "alerts": alerts}, separators=(",", ":"))
    data = data.replace("</", "<\\/")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<meta name='generator' content='sandmine webmap, Leaflet {esc(version)}'>",
        "<title>sandmine map report</title>",
        f"<style>{css}</style><style>{_CSS}</style><script>{js}</script></head><body>",
    ]
    if synthetic:
        parts.append(f"<div class='banner' id='synthetic-banner'>{esc(SYNTHETIC_BANNER)}</div>")
    parts.append("<div id='main'><div id='sidebar'><h1>Predicted sand mining</h1><p id='warning'></p>")
    parts.append(
        "<p class='legend'><span style='border:2px solid #ffdc00'></span>mine "
        "<span style='background:#e00'></span>new <span style='background:#f80'></span>expanded "
        "<span style='background:#0af'></span>abandoned <span style='border:2px dashed #999'></span>median<br>"
        f"probability 0.2 <span style='width:90px;background:linear-gradient(to right,{_magma_css()})'></span> 1</p>"
        "<p class='note'>Click a polygon for its area, probability and date; pick a date per site below; "
        "layers and the online basemap (off: the page needs no network) are at the top right.</p>"
        "<p class='note' id='review-help'><b>Review</b> (panel at the bottom left of the map): mark each mine "
        "polygon <i>mine</i>, <i>not a mine</i> or <i>unsure</i> in its popup, draw the mines the map missed, and "
        "download the decisions as GeoJSON. This browser keeps them for this report across reloads. "
        "<code>sandmine review-stats FILE</code> gives the map's precision, "
        "<code>--labels-dir DIR</code> writes them as labels (<code>labels.source: geojson</code>).</p>"
    )
    parts.append("<table><tr><th>site</th><th>dates</th><th>latest (ha)</th><th>median (ha)</th></tr>")
    for site, obs in sorted(by_site.items()):
        parts.append(
            f"<tr><td><a href='#site-{esc(site)}'>{esc(site)}</a></td><td>{len(obs)}</td>"
            f"<td>{obs[-1]['area_ha']:.1f}</td><td>{_ha(medians.get(site))}</td></tr>"
        )
    parts.append("</table>")
    if alerts is not None:
        parts.append(_alerts_panel(alerts))
    for site, obs in sorted(by_site.items()):
        parts.append(_site_panel(site, obs, changes, medians.get(site, float("nan"))))
    parts.append(f"<p class='note'>Map: Leaflet {esc(version)} (BSD-2-Clause), inlined.</p></div>")
    parts.append("<div id='map'></div></div>")
    parts.append(f"<script type='application/json' id='sandmine-data'>{data}</script>")
    parts.append(f"<script>{_JS}</script></body></html>\n")
    text = "\n".join(parts)
    write_text(path, text)
    log.info("map report %s: %d sites, %.2f MB", path, len(sites), len(text.encode()) / 1e6)
