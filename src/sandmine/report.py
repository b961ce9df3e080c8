"""Pictures: overlays, previews, the split map, the confusion matrix, reliability and time series plots."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sandmine.core.pictures import save_png, stretch  # noqa: E402


def true_colour(image: np.ndarray, bands: list[str], keep_nodata: bool = False) -> np.ndarray:
    """(H, W, 3) 0–1 RGB from B4, B3, B2 with a 2–98 % stretch over the pixels with data (grey if bands
    are missing). No data (NaN in a band) is 0, or NaN with `keep_nodata` (the map report makes it transparent)."""
    if not all(b in bands for b in ("B4", "B3", "B2")):
        rgb = np.repeat(np.asarray(image[0])[..., None], 3, axis=2)
    else:
        rgb = np.stack([image[bands.index(b)] for b in ("B4", "B3", "B2")], axis=-1)
    valid = np.isfinite(rgb).all(axis=-1)
    # NaN left in: the percentiles are of the data, not of no-data counted as 0
    out = stretch(rgb) if valid.any() else np.zeros(rgb.shape, np.float32)
    if keep_nodata:
        out[~valid] = np.nan
    return out


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


def timeseries_plot(series: dict[str, list[tuple[str, float]]], path: Path) -> None:
    """Mined area over time, one line per site."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for site, points in sorted(series.items()):
        ax.plot([np.datetime64(d) for d, _ in points], [a for _, a in points], marker="o", label=site)
    ax.set_ylabel("predicted mined area (ha)")
    ax.set_title("mined area by site and date")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
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


def confusion(tp: int, fp: int, fn: int, tn: int, threshold: float, path: Path) -> None:
    """Pixel confusion matrix at `threshold`: counts, and rates per true class."""
    m = np.array([[tn, fp], [fn, tp]], np.float64)
    rates = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.1%}\n{int(m[i, j]):,} px",
                ha="center",
                va="center",
                color="white" if rates[i, j] > 0.5 else "black",
            )
    ax.set_xticks([0, 1], ["not mine", "mine"])
    ax.set_yticks([0, 1], ["not mine", "mine"])
    ax.set_xlabel(f"predicted (probability ≥ {threshold:.3f})")
    ax.set_ylabel("labelled")
    ax.set_title("pixels in the AOI")
    save_png(fig, path)


def reliability(bins: list[dict[str, float]], ece: float, path: Path) -> None:
    """Reliability diagram: mine fraction against mean predicted probability per bin, pixel counts below."""
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(4.6, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-", color="tab:red", label="model")
    ax.set_ylabel("fraction of pixels that are mine")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"reliability in the AOI (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    centres = [(b["bin_lo"] + b["bin_hi"]) / 2 for b in bins]
    bx.bar(centres, [b["pixels"] for b in bins], width=0.09, color="0.5")
    bx.set_yscale("log")
    bx.set_xlabel("predicted probability")
    bx.set_ylabel("pixels")
    save_png(fig, path)
