"""Band catalogue: names, native resolution, wavelength, and how each band is scaled."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from sandmine.core.errors import SandmineError


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


_S2_NAME = re.compile(r"^B0*(\d{1,2})(A?)$")


def canonical(name: str) -> str:
    """The catalogue's spelling of a band description: `B02` → `B2`, `b8a` → `B8A`, `vv` → `VV`.

    Sentinel-2 files from ESA, SNAP or QGIS often zero-pad band numbers; a name that is no catalogued
    band under any spelling is returned as written.
    """
    text = name.strip().upper()
    m = _S2_NAME.match(text)
    if m:
        text = f"B{int(m.group(1))}{m.group(2)}"
    return text if text in CATALOGUE else name


def naming_advice(names: list[str]) -> str:
    """How to name bands, when some of a file's band descriptions are no catalogued band ("" otherwise)."""
    odd = [n for n in names if n not in CATALOGUE]
    if not odd:
        return ""
    return (
        f"; its band descriptions {odd} are no band sandmine knows: name each band {', '.join(CATALOGUE)} "
        "(B02 and b8a are read as B2 and B8A), e.g. in Python with rasterio: "
        "dst.set_band_description(1, 'B2')"
    )


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


# Units of a file that does not state them (no scale tag): decided from its data type and values
REFLECTANCE_MAX = 2.0  # 99th percentile; bright cloud and snow stay below ~1.5
NEGATIVE_NOISE = -0.05  # 1st percentile of reflectance; lower is not noise around 0
DN_RANGE = (255.0, 20_000.0)  # 99th percentile of Sentinel-2 digital numbers: above an 8-bit rendering
DN_MIN_REFLECTANCE = -0.11  # 1st percentile once converted: DN 0 with baseline 04.00's −1000 offset is −0.1
LINEAR_MAX = 2.0  # 99th percentile of Sentinel-1 linear power (σ0; dB are mostly negative)
DB_RANGE = (-60.0, 40.0)  # 1st and 99th percentile of backscatter in dB


@dataclass(frozen=True)
class Conversion:
    """How one band's values (after the file's own scale and offset) become export units.

    Attributes:
        kind: `dn` (reflectance = (value + offset) / quantification; a stored 0 is nodata) or
            `linear` (dB = 10 log10(value); values ≤ 0 are nodata).
        offset: added to a digital number first (−1000 from processing baseline 04.00, where the file says so).
        quantification: digital numbers per unit of reflectance.
    """

    kind: str
    offset: float = 0.0
    quantification: float = 10_000.0

    def apply(self, values: np.ndarray, raw: np.ndarray) -> None:
        """Convert (H, W) float32 `values` in place; `raw` is what the file stores there."""
        if self.kind == "dn":
            values[raw == 0] = np.nan  # 0 is nodata in Sentinel-2 products
            values += np.float32(self.offset)
            values /= np.float32(self.quantification)
        else:
            values[values <= 0] = np.nan
            np.log10(values, out=values)
            values *= np.float32(10.0)


def file_units(
    samples: dict[str, np.ndarray],
    dtype: str,
    where: str,
    offsets: dict[str, float] | None = None,
    quantification: float = 10_000.0,
) -> tuple[dict[str, Conversion], str]:
    """Decide, once per file, the units of its bands that carry no scale of their own.

    Args:
        samples: band name -> 1-D values of valid pixels (a decimated read; an integer file's 0s left
            out), for the file's reflectance and dB bands whose scale is 1.
        dtype: the file's data type (`uint16`, `float32`, …).
        where: the file, for messages.
        offsets: digital-number offset per band that the file's tags record (e.g. BOA_ADD_OFFSET −1000).
        quantification: digital numbers per unit reflectance that the file records (default 10000).

    Returns:
        The conversions of bands not already in export units, and one sentence saying what was done
        ("" when nothing).

    Raises:
        SandmineError: optical values that are neither reflectance nor digital numbers (an 8-bit
            rendering, negative, too large), or radar values neither in dB nor linear power.
    """
    out: dict[str, Conversion] = {}
    said: list[str] = []
    optical = [b for b in samples if CATALOGUE[b].unit == "reflectance"]
    if optical:
        out.update(_optical(optical, samples, dtype, where, offsets or {}, quantification, said))
    radar = [b for b in samples if CATALOGUE[b].unit == "dB"]
    if radar:
        out.update(_radar(radar, samples, where, said))
    return out, "; ".join(said)


def _optical(
    names: list[str],
    samples: dict[str, np.ndarray],
    dtype: str,
    where: str,
    offsets: dict[str, float],
    quantification: float,
    said: list[str],
) -> dict[str, Conversion]:
    values = np.concatenate([samples[b] for b in names])
    integer = np.dtype(dtype).kind in "iu"
    lo, hi = np.percentile(values, [1, 99]) if values.size else (0.0, 0.0)
    found = f"bands {', '.join(names)} ({dtype}, no scale tag, 1st–99th percentile {lo:g}…{hi:g})"
    fix = (
        "export surface reflectance (0–1) or Sentinel-2 L2A digital numbers (0–10000, e.g. Earth Engine "
        "COPERNICUS/S2_SR_HARMONIZED as uint16), not a rendering; if the values are in other known units, "
        "record them with `gdal_edit -scale S -offset O` (reflectance = stored × S + O)"
    )
    if dtype == "uint8":
        raise SandmineError(f"{found} look like an 8-bit (0–255) rendering, not reflectance", where, fix)
    if integer and not values.size:  # no valid pixel; the stages that need one say so
        said.append(f"bands {', '.join(names)} ({dtype}) hold only 0, Sentinel-2's nodata: read as nodata")
        return {b: Conversion("dn", offsets.get(b, 0.0), quantification) for b in names}
    if not integer and hi <= REFLECTANCE_MAX:
        if lo < NEGATIVE_NOISE:
            raise SandmineError(f"{found} hold negative reflectance beyond noise", where, fix)
        return {}
    dn_offset = min([offsets.get(b, 0.0) for b in names])
    if DN_RANGE[0] < hi <= DN_RANGE[1] and (lo + dn_offset) / quantification >= DN_MIN_REFLECTANCE:
        q = f"{quantification:g}"
        if any(offsets.get(b) for b in names):
            sign = "−" if dn_offset < 0 else "+"
            formula = f"(DN {sign} {abs(dn_offset):g}) / {q} (the offset of the file's ADD_OFFSET tags)"
        else:
            formula = f"DN / {q} (no ADD_OFFSET tag, so no −1000 offset: right for Earth Engine's harmonized data)"
        said.append(f"{found} are Sentinel-2 digital numbers: read as reflectance = {formula}, 0 as nodata")
        return {b: Conversion("dn", offsets.get(b, 0.0), quantification) for b in names}
    if hi <= DN_RANGE[0]:
        what = "neither reflectance (0–1) nor digital numbers (an 8-bit rendering?)"
        raise SandmineError(f"{found} are {what}", where, fix)
    what = "below" if lo < 0 else "beyond"
    raise SandmineError(f"{found} are {what} the range of reflectance and of Sentinel-2 digital numbers", where, fix)


def _radar(names: list[str], samples: dict[str, np.ndarray], where: str, said: list[str]) -> dict[str, Conversion]:
    values = np.concatenate([samples[b] for b in names])
    if not values.size:
        return {}
    lo, hi = np.percentile(values, [1, 99])
    found = f"bands {', '.join(names)} (no scale tag, 1st–99th percentile {lo:g}…{hi:g})"
    if values.min() >= 0 and hi <= LINEAR_MAX:
        said.append(f"{found} look like Sentinel-1 linear power: converted to dB = 10·log10(value), ≤ 0 as nodata")
        return {b: Conversion("linear") for b in names}
    if DB_RANGE[0] <= lo and hi <= DB_RANGE[1]:
        return {}
    raise SandmineError(
        f"{found} are neither backscatter in dB (about −35…+10) nor linear power (0…1)",
        where,
        "export calibrated σ0 in dB (10·log10 of linear power); if it is stored ×100, record that with "
        "`gdal_edit -scale 0.01`",
    )


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
