"""The map report: one self-contained HTML page (no network) of sites, imagery, predictions,
polygons, change between dates and mined area over time, as switchable layers."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sandmine.files import write_text  # noqa: E402
from sandmine.raster import Grid, pixels_to_map, to_crs  # noqa: E402
from sandmine.report import SYNTHETIC_BANNER  # noqa: E402


def _array_b64(rgba: np.ndarray) -> str:
    """PNG of an (H, W, 3|4) 0–1 float array, base64."""
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(np.clip(np.rint(rgba * 255), 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _thumb_factor(grid: Grid, max_px: int = 480) -> int:
    return max(1, int(np.ceil(max(grid.height, grid.width) / max_px)))


def _svg_paths(features: list[dict], grid: Grid, f: int, cls: str, attrs: str = "") -> str:
    """SVG paths of EPSG:4326 `features` in the pixel space of a thumbnail `f` times smaller."""
    from shapely.geometry import shape

    inv = ~grid.transform
    out = []
    for feat in features:
        geom = pixels_to_map(to_crs(shape(feat["geometry"]), "EPSG:4326", grid.crs), inv)
        d = []
        for poly in getattr(geom, "geoms", [geom]):
            for ring in [poly.exterior, *poly.interiors]:
                xy = np.asarray(ring.coords) / f
                d.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in xy) + "Z")
        props = feat["properties"]
        title = html.escape(", ".join(f"{k}: {v}" for k, v in props.items() if k in ("area_ha", "mean_prob", "change")))
        out.append(f"<path class='{cls}' {attrs} d='{' '.join(d)}'><title>{title}</title></path>")
    return "".join(out)


def _chart_svg(points: list[tuple[str, float]], width: int = 360, height: int = 160) -> str:
    """A small inline SVG line chart of mined area (ha) against date."""
    if not points:
        return ""
    days = np.array([np.datetime64(d, "D").astype(np.int64) for d, _ in points], np.float64)
    vals = np.array([a for _, a in points], np.float64)
    x0, x1 = days.min(), max(days.max(), days.min() + 1)
    top = max(vals.max(), 1e-9) * 1.15
    m = 40
    xs = m + (days - x0) / (x1 - x0) * (width - 2 * m)
    ys = height - m + (-(vals / top)) * (height - 2 * m)
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    labels = "".join(
        f"<circle class='point' cx='{x:.1f}' cy='{y:.1f}' r='4'><title>{d}: {a:.1f} ha</title></circle>"
        f"<text x='{x:.1f}' y='{height - m + 16}' font-size='10' text-anchor='middle'>{d}</text>"
        f"<text x='{x:.1f}' y='{y - 8:.1f}' font-size='10' text-anchor='middle'>{a:.0f}</text>"
        for (d, a), x, y in zip(points, xs, ys)
    )
    return (
        f"<svg class='chart' width='{width}' height='{height}' role='img' aria-label='mined area over time'>"
        f"<line x1='{m}' y1='{height - m}' x2='{width - m}' y2='{height - m}' stroke='#555'/>"
        f"<text x='4' y='14' font-size='11'>mined area (ha)</text>"
        f"<polyline points='{pts}' fill='none' stroke='#c40' stroke-width='2'/>{labels}</svg>"
    )


_MAP_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}
.banner{background:#b00;color:#fff;padding:.6em;font-weight:bold}
.site{border-top:1px solid #aaa;margin-top:1.5em;padding-top:.5em}
.map{position:relative;display:inline-block;vertical-align:top;background:#eee;margin-right:1em}
.map img,.map svg.overlay{position:absolute;left:0;top:0}
.hidden{display:none}
path.mine{fill:rgba(255,220,0,.25);stroke:#ffdc00;stroke-width:1.5}
path.change-new{fill:rgba(230,0,0,.45);stroke:#e00}
path.change-expanded{fill:rgba(255,140,0,.45);stroke:#f80}
path.change-abandoned{fill:rgba(0,160,255,.45);stroke:#0af}
table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em}
.controls label{margin-right:.8em}"""

_MAP_JS = """
function refresh(panel){
  const date = panel.querySelector('input.date:checked').value;
  const on = {};
  panel.querySelectorAll('input.layer').forEach(c => on[c.value] = c.checked);
  panel.querySelectorAll('[data-layer]').forEach(el => {
    const d = el.dataset.date;
    const visible = on[el.dataset.layer] && (d === undefined || d === date || d === 'all');
    el.classList.toggle('hidden', !visible);
  });
}
document.querySelectorAll('.site').forEach(panel => {
  panel.querySelectorAll('input').forEach(i => i.addEventListener('change', () => refresh(panel)));
  refresh(panel);
});
function check(){
  // after 'load' every image has loaded or failed; hidden ones too (decode() may wait for display)
  let ok = 0, bad = 0;
  for (const img of Array.from(document.images)) {
    if (img.complete && img.naturalWidth > 0) ok++; else bad++;
  }
  const b = document.body.dataset;
  b.imagesOk = ok; b.imagesFailed = bad;
  b.polygons = document.querySelectorAll('path.mine').length;
  b.changePolygons = document.querySelectorAll('path[class^=change-]').length;
  b.visiblePolygons = Array.from(document.querySelectorAll('path.mine'))
    .filter(p => p.closest('.hidden') === null && p.getBBox().width > 0).length;
  b.ready = '1';
}
window.addEventListener('load', check);
"""


def map_report(
    by_site: dict[str, list[dict]],
    changes: list[dict],
    medians: dict[str, float],
    synthetic: bool,
    path: Path,
) -> None:
    """A self-contained HTML page (no network needed): an overview of the sites, and per site
    its imagery, predicted probability, polygons and change between dates as switchable
    layers, with the mined area over time.

    `by_site[site]` items: obs_id, date, grid, rgb, q (uint8 probability), features, area_ha.
    """
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>sandmine map report</title>",
        f"<style>{_MAP_CSS}</style></head><body>",
    ]
    if synthetic:
        parts.append(f"<div class='banner' id='synthetic-banner'>{esc(SYNTHETIC_BANNER)}</div>")
    parts.append("<h1>Predicted sand mining</h1>")
    parts.append(_overview_svg(by_site))
    parts.append(
        "<table><tr><th>site</th><th>dates</th><th>latest mined area (ha)</th><th>temporal median (ha)</th></tr>"
    )
    for site, obs in sorted(by_site.items()):
        parts.append(
            f"<tr><td><a href='#site-{esc(site)}'>{esc(site)}</a></td><td>{len(obs)}</td>"
            f"<td>{obs[-1]['area_ha']:.1f}</td><td>{medians.get(site, float('nan')):.1f}</td></tr>"
        )
    parts.append("</table>")
    cmap = plt.get_cmap("magma")
    for site, obs in sorted(by_site.items()):
        grid = obs[0]["grid"]
        f = _thumb_factor(grid)
        h, w = -(-grid.height // f), -(-grid.width // f)
        parts.append(f"<div class='site' id='site-{esc(site)}'><h2>{esc(site)}</h2><div class='controls'>")
        for i, o in enumerate(obs):
            checked = " checked" if i == len(obs) - 1 else ""
            parts.append(
                f"<label><input type='radio' class='date' name='date-{esc(site)}' value='{esc(o['date'])}'"
                f"{checked}>{esc(o['date'])}</label>"
            )
        parts.append(" | ")
        for layer in ("imagery", "probability", "polygons", "change"):
            parts.append(f"<label><input type='checkbox' class='layer' value='{layer}' checked>{layer}</label>")
        parts.append(f"</div><div class='map' style='width:{w}px;height:{h}px'>")
        for o in obs:
            d = esc(o["date"])
            rgb = o["rgb"][::f, ::f]
            prob = o["q"][::f, ::f] / 255.0
            rgba = cmap(prob)
            rgba[..., 3] = np.clip((prob - 0.2) / 0.6, 0, 1) * 0.8
            parts.append(
                f"<img data-layer='imagery' data-date='{d}' alt='imagery {esc(o['obs_id'])}' width='{w}' height='{h}'"
                f" src='data:image/png;base64,{_array_b64(rgb)}'>"
                f"<img data-layer='probability' data-date='{d}' alt='probability {esc(o['obs_id'])}' width='{w}'"
                f" height='{h}' src='data:image/png;base64,{_array_b64(rgba)}'>"
            )
        parts.append(f"<svg class='overlay' width='{w}' height='{h}' viewBox='0 0 {w} {h}'>")
        for o in obs:
            parts.append(f"<g data-layer='polygons' data-date='{esc(o['date'])}'>")
            parts.append(_svg_paths(o["features"], grid, f, "mine"))
            parts.append("</g>")
        for c in changes:
            if c["site_id"] != site:
                continue
            parts.append(f"<g data-layer='change' data-date='{esc(c['to'])}'>")
            for name in ("new", "expanded", "abandoned"):
                feats = [x for x in c["features"] if x["properties"]["change"] == name]
                parts.append(_svg_paths(feats, grid, f, f"change-{name}"))
            parts.append("</g>")
        parts.append("</svg></div>")
        parts.append(_chart_svg([(o["date"], o["area_ha"]) for o in obs]))
        rows = [c for c in changes if c["site_id"] == site]
        if rows:
            parts.append(
                "<table><tr><th>from</th><th>to</th><th style='color:#e00'>new (ha)</th>"
                "<th style='color:#f80'>expanded (ha)</th><th style='color:#0af'>abandoned (ha)</th></tr>"
            )
            for c in rows:
                parts.append(
                    f"<tr><td>{esc(c['from'])}</td><td>{esc(c['to'])}</td><td>{c['new']:.1f}</td>"
                    f"<td>{c['expanded']:.1f}</td><td>{c['abandoned']:.1f}</td></tr>"
                )
            parts.append("</table>")
        parts.append("</div>")
    parts.append(f"<script>{_MAP_JS}</script></body></html>\n")
    write_text(path, "\n".join(parts))


def _overview_svg(by_site: dict[str, list[dict]], width: int = 520, height: int = 320) -> str:
    """Sites as circles at their lon/lat (equirectangular), sized by the latest mined area."""
    from shapely.geometry import box

    centres = {}
    for site, obs in by_site.items():
        c = to_crs(box(*obs[0]["grid"].bounds), obs[0]["grid"].crs, "EPSG:4326").centroid
        centres[site] = (c.x, c.y, obs[-1]["area_ha"])
    if not centres:
        return ""
    lons = [v[0] for v in centres.values()]
    lats = [v[1] for v in centres.values()]
    pad = 1.0
    x0, x1, y0, y1 = min(lons) - pad, max(lons) + pad, min(lats) - pad, max(lats) + pad
    scale = min((width - 20) / (x1 - x0), (height - 20) / (y1 - y0))
    amax = max(max(v[2] for v in centres.values()), 1e-9)
    out = [f"<svg id='overview' width='{width}' height='{height}' style='background:#dde8f0'>"]
    for site, (lon, lat, area) in sorted(centres.items()):
        x, y = 10 + (lon - x0) * scale, 10 + (y1 - lat) * scale
        r = 4 + 12 * np.sqrt(area / amax)
        out.append(
            f"<a href='#site-{html.escape(site)}'><circle class='site-marker' cx='{x:.1f}' cy='{y:.1f}' r='{r:.1f}'"
            f" fill='#c40' fill-opacity='.7'><title>{html.escape(site)}: {area:.1f} ha</title></circle>"
            f"<text x='{x + r + 2:.1f}' y='{y + 4:.1f}' font-size='11'>{html.escape(site)}</text></a>"
        )
    out.append(f"<text x='6' y='{height - 6}' font-size='10'>lon {x0:.1f}–{x1:.1f}, lat {y0:.1f}–{y1:.1f}</text></svg>")
    return "".join(out)
