"""Band catalogue: names, native resolution, wavelength, and how each band is scaled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sandmine.errors import SandmineError


@dataclass(frozen=True)
class Band:
    """One band of an exported image.

    Attributes:
        name: the band description written into the GeoTIFF (B1…B12, B8A, VV, VH, CLOUD).
        resolution_m: native ground sampling distance.
        wavelength_nm: central wavelength (0 for radar and derived bands).
        unit: `reflectance` (0–1 L2A surface reflectance), `dB` (backscatter) or `score` (0–1).
    """

    name: str
    resolution_m: int
    wavelength_nm: float
    unit: str


CATALOGUE: dict[str, Band] = {
    b.name: b
    for b in [
        Band("B1", 60, 443, "reflectance"),
        Band("B2", 10, 490, "reflectance"),
        Band("B3", 10, 560, "reflectance"),
        Band("B4", 10, 665, "reflectance"),
        Band("B5", 20, 705, "reflectance"),
        Band("B6", 20, 740, "reflectance"),
        Band("B7", 20, 783, "reflectance"),
        Band("B8", 10, 842, "reflectance"),
        Band("B8A", 20, 865, "reflectance"),
        Band("B9", 60, 945, "reflectance"),
        Band("B10", 60, 1375, "reflectance"),
        Band("B11", 20, 1610, "reflectance"),
        Band("B12", 20, 2190, "reflectance"),
        Band("VV", 10, 0, "dB"),
        Band("VH", 10, 0, "dB"),
        Band("CLOUD", 10, 0, "score"),
    ]
}

S2_L2A = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
S1 = ["VV", "VH"]
EXPORT_DEFAULT = [*S2_L2A, *S1, "CLOUD"]


def check_names(names: list[str], where: str) -> None:
    """Raise if any name is not a catalogued band."""
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise SandmineError(f"unknown band(s) {unknown}", where, f"use names from: {', '.join(CATALOGUE)}")


def select(available: list[str], wanted: list[str], where: str) -> list[int]:
    """Indices of `wanted` bands within `available` (an image's band descriptions)."""
    check_names(wanted, where)
    missing = [n for n in wanted if n not in available]
    if missing:
        raise SandmineError(
            f"image lacks band(s) {missing}; it has {available}",
            where,
            "export those bands or remove them from 'model.bands'",
        )
    return [available.index(n) for n in wanted]


def to_model_units(image: np.ndarray, names: list[str], inplace: bool = False) -> np.ndarray:
    """Bring bands to comparable ranges before per-band standardisation.

    Args:
        image: (C, H, W) float32 in export units (reflectance 0–1, dB, score).
        names: band names of the C channels.
        inplace: overwrite a float32 `image` instead of copying it (saves memory when streaming).

    Returns:
        (C, H, W) float32; dB bands mapped from about [-30, 5] to about [0, 1].
    """
    out = image if inplace and image.dtype == np.float32 else image.astype(np.float32, copy=True)
    for i, name in enumerate(names):
        if CATALOGUE[name].unit == "dB":
            out[i] += 30.0
            out[i] /= 30.0
    return np.nan_to_num(out, nan=0.0, copy=False)


# Normalised-difference index channels: name -> (a, b) for (a - b) / (a + b) on reflectance
INDICES: dict[str, tuple[str, str]] = {
    "NDWI": ("B3", "B8"),  # McFeeters 1996: open water
    "NDVI": ("B8", "B4"),  # vegetation
    "MNDWI": ("B3", "B11"),  # Xu 2006: water, separates built-up and bare sand better than NDWI
}


def read_names(bands: list[str], indices: list[str]) -> list[str]:
    """Bands to read from an image: the model's bands, then any band an index needs and they lack."""
    out = list(bands)
    for name in indices:
        for b in INDICES[name]:
            if b not in out:
                out.append(b)
    return out


def channels(raw: np.ndarray, names: list[str], bands: list[str], indices: list[str]) -> np.ndarray:
    """(C_model, H, W) model-unit channels: `bands` then `indices`, from `raw` (bands `names`).

    Index values are in [-1, 1]; where either band is nodata (NaN) or both are 0, 0.
    """
    if not indices and names == bands:
        return to_model_units(raw, bands)
    out = np.empty((len(bands) + len(indices), *raw.shape[1:]), np.float32)
    for k, name in enumerate(indices):
        a, b = (raw[names.index(x)] for x in INDICES[name])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[len(bands) + k] = np.nan_to_num((a - b) / (a + b), nan=0.0, posinf=0.0, neginf=0.0)
    out[: len(bands)] = to_model_units(raw[[names.index(b) for b in bands]], bands)
    return out


def normalise(
    image: np.ndarray,
    bands: list[str],
    mean: np.ndarray,
    std: np.ndarray,
    inplace: bool = False,
    names: list[str] | None = None,
    indices: list[str] | None = None,
) -> np.ndarray:
    """(C, H, W) export units -> standardised float32 model channels; nodata (NaN) counts as 0.

    With `indices`, `image` holds bands `names` (see `read_names`) and index channels are appended.
    """
    if indices:
        x = channels(image, names or bands, bands, indices)
    else:
        x = to_model_units(image, bands, inplace)
    x -= mean.astype(np.float32)[:, None, None]
    x /= std.astype(np.float32)[:, None, None]
    return x
