"""Pictures and the map report: overlays, the split map, PR curve data, and an HTML page."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sandmine.files import atomic_path, write_text  # noqa: E402

SYNTHETIC_BANNER = (
    "SYNTHETIC DATA: these images and labels come from sandmine's embedded world, "
    "not from satellites. Numbers here say nothing about real rivers."
)


def true_colour(image: np.ndarray, bands: list[str]) -> np.ndarray:
    """(H, W, 3) 0–1 RGB from B4, B3, B2 with a 2–98 % stretch (grey if bands are missing)."""
    if not all(b in bands for b in ("B4", "B3", "B2")):
        g = np.nan_to_num(image[0])
        rgb = np.repeat(g[..., None], 3, axis=2)
    else:
        rgb = np.stack([np.nan_to_num(image[bands.index(b)]) for b in ("B4", "B3", "B2")], axis=-1)
    return _stretch(rgb)


def save_png(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def overlay(rgb: np.ndarray, truth: np.ndarray | None, prob: np.ndarray, title: str, path: Path) -> None:
    """True colour, truth and prediction side by side."""
    panels = 3 if truth is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.2))
    axes[0].imshow(rgb)
    axes[0].set_title("true colour")
    if truth is not None:
        axes[1].imshow(rgb)
        axes[1].imshow(np.ma.masked_where(truth != 1, truth), cmap="autumn", alpha=0.6)
        axes[1].set_title("labels (mine)")
    axes[-1].imshow(prob, cmap="magma", vmin=0, vmax=1)
    axes[-1].set_title("predicted probability")
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title)
    save_png(fig, path)


def _png_b64(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=70, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def map_report(entries: list[dict], series: dict[str, list[tuple[str, float]]], synthetic: bool, path: Path) -> None:
    """A self-contained HTML page: per observation a thumbnail with predicted polygons' areas,
    per site the mined area over time. `entries` items: obs_id, site_id, date, rgb, prob,
    area_ha, n_polygons."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>sandmine map report</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}.banner{background:#b00;color:#fff;"
        "padding:.6em;font-weight:bold}.obs{display:inline-block;margin:.5em;vertical-align:top}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em}</style>",
        "</head><body>",
    ]
    if synthetic:
        parts.append(f"<div class='banner' id='synthetic-banner'>{html.escape(SYNTHETIC_BANNER)}</div>")
    parts.append("<h1>Predicted sand mining</h1><h2>Mined area by site and date</h2>")
    for site, points in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(5, 2.5))
        dates = [np.datetime64(d) if d else np.datetime64("NaT") for d, _ in points]
        ax.plot(dates, [a for _, a in points], marker="o")
        fig.autofmt_xdate()
        ax.set_ylabel("mined area (ha)")
        ax.set_title(site)
        parts.append(f"<img alt='time series {html.escape(site)}' src='data:image/png;base64,{_png_b64(fig)}'>")
    parts.append(
        "<h2>Observations</h2><table><tr><th>observation</th><th>site</th><th>date</th>"
        "<th>polygons</th><th>area (ha)</th></tr>"
    )
    for e in entries:
        parts.append(
            f"<tr><td>{html.escape(e['obs_id'])}</td><td>{html.escape(e['site_id'])}</td>"
            f"<td>{e['date']}</td><td>{e['n_polygons']}</td><td>{e['area_ha']:.1f}</td></tr>"
        )
    parts.append("</table>")
    for e in entries:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(e["rgb"])
        ax.imshow(np.ma.masked_where(e["prob"] < 0.5, e["prob"]), cmap="autumn", alpha=0.6, vmin=0.5, vmax=1)
        ax.set_axis_off()
        ax.set_title(e["obs_id"], fontsize=8)
        parts.append(
            f"<div class='obs'><img alt='{html.escape(e['obs_id'])}' src='data:image/png;base64,{_png_b64(fig)}'></div>"
        )
    parts.append("</body></html>\n")
    write_text(path, "\n".join(parts))


def _stretch(rgb: np.ndarray) -> np.ndarray:
    lo, hi = np.nanpercentile(rgb, [2, 98])
    return np.clip((np.nan_to_num(rgb) - lo) / max(hi - lo, 1e-6), 0, 1)


def world_preview(
    pixels: np.ndarray, names: list[str], drawn: np.ndarray, truth: np.ndarray, title: str, path: Path
) -> None:
    """True colour (B4 B3 B2) and false colour (B12 B8A B4): labels in red, exact truth in cyan."""
    aspect = pixels.shape[1] / pixels.shape[2]
    fig, axes = plt.subplots(2, 1, figsize=(12, 2 * 12 * aspect + 1.2))  # scenes are broad: stack
    for ax, bands, name in (
        (axes[0], ("B4", "B3", "B2"), "true colour"),
        (axes[1], ("B12", "B8A", "B4"), "false colour (SWIR, NIR, red)"),
    ):
        if all(b in names for b in bands):
            ax.imshow(_stretch(np.stack([pixels[names.index(b)] for b in bands], axis=-1)))
        if drawn.any():
            ax.contour(drawn, [0.5], colors="red", linewidths=0.7)
        if truth.any():
            ax.contour(truth, [0.5], colors="cyan", linewidths=0.5, linestyles="dotted")
        ax.set_title(name)
        ax.set_axis_off()
    fig.suptitle(f"{title} (synthetic): annotators' polygons red, exact truth cyan")
    save_png(fig, path)


def split_map(rows: list[dict], centroids: dict[str, tuple[float, float]], path: Path) -> None:
    """Sites coloured by role, labelled with their cluster."""
    colours = {"train": "tab:blue", "val": "tab:orange", "test": "tab:red", "infer": "tab:grey"}
    fig, ax = plt.subplots(figsize=(6, 6))
    seen = set()
    for r in rows:
        if (r["site_id"], r["role"]) in seen:
            continue
        seen.add((r["site_id"], r["role"]))
        x, y = centroids[r["site_id"]]
        ax.scatter(x, y, c=colours[r["role"]], label=r["role"], s=40)
        ax.annotate(str(r["cluster"]), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys())
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("geographic split (numbers: cluster)")
    save_png(fig, path)
