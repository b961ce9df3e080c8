"""Pictures: the display stretch, PNG files that do not change between runs, and image previews."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sandmine.core.files import atomic_path  # noqa: E402


def save_png(fig: plt.Figure, path: Path) -> None:
    """`fig` as a PNG at `path` (atomically, without the software tag, so reruns write the same bytes); closes it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def stretch(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) values to 0–1 with a 2–98 % percentile stretch over all of them (NaN as 0)."""
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
            ax.imshow(stretch(np.stack([pixels[names.index(b)] for b in bands], axis=-1)))
        if drawn.any():
            ax.contour(drawn, [0.5], colors="red", linewidths=0.7)
        if truth.any():
            ax.contour(truth, [0.5], colors="cyan", linewidths=0.5, linestyles="dotted")
        ax.set_title(name)
        ax.set_axis_off()
    fig.suptitle(f"{title} (synthetic): annotators' polygons red, exact truth cyan")
    save_png(fig, path)
