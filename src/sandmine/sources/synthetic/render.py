"""Render a layout into Sentinel-2 L2A reflectance, Sentinel-1 backscatter and a cloud score.

Physics kept where it is cheap: object-level spectral variation, texture, 20 m and 60 m bands
rendered at native resolution, a point-spread blur, sensor noise, haze, clouds with shadows
offset from them, and multiplicative speckle on radar in linear power.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sandmine.core.bands import CATALOGUE
from sandmine.sources.synthetic.layout import Layout, smooth_noise
from sandmine.sources.synthetic.materials import CODE, Signatures

SPECKLE_LOOKS = 4.4


def _object_factors(rng: np.random.Generator, n_objects: int, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-object brightness (unit-sd normal) and a small per-band spectral tilt."""
    # bounded: a 3-sigma field or bar would look like another material
    brightness = np.clip(rng.standard_normal(n_objects), -2.2, 2.2).astype(np.float32)
    tilt = (0.04 * rng.standard_normal((n_objects, n_bands))).astype(np.float32)
    return brightness, tilt


def _native_resolution(band: np.ndarray, res_m: int) -> np.ndarray:
    """Average over the band's native pixel, then resample back to 10 m (blurrier bands)."""
    f = res_m // 10
    if f == 1:
        return band
    h, w = band.shape
    ph, pw = -h % f, -w % f
    padded = np.pad(band, ((0, ph), (0, pw)), mode="edge")
    coarse = padded.reshape((h + ph) // f, f, (w + pw) // f, f).mean(axis=(1, 3))
    return ndimage.zoom(coarse, f, order=1, mode="nearest")[:h, :w]


def band_names(sig: Signatures) -> list[str]:
    """The bands `render` returns, in order."""
    return [*sig.bands, "VV", "VH", "CLOUD"]


def render(
    layout: Layout, sig: Signatures, rng: np.random.Generator, cloud_probability: float, haze_probability: float = 0.5
) -> tuple[np.ndarray, list[str]]:
    """Pixels of one observation.

    Returns:
        (C, H, W) float32: 12 L2A reflectance bands (0–1), VV and VH (dB), CLOUD (0–1),
        and the list of band names in that order.
    """
    mat = layout.material
    h, w = mat.shape
    nb = len(sig.bands)
    n_obj = int(layout.objects.max()) + 1
    z, tilt = _object_factors(rng, n_obj, nb)
    brightness = np.exp(z[layout.objects] * sig.rel_sd[mat])
    regional = 1 + 0.05 * smooth_noise(rng, (h, w), 25.0)
    fine = smooth_noise(rng, (h, w), 0.7)
    texture = 1 + sig.texture[mat] * fine
    darken = 1 - 0.35 * layout.moisture * (mat == CODE["dry_sand"])
    common = brightness * regional * texture * darken

    refl = np.empty((nb, h, w), np.float32)
    for i in range(nb):
        band = sig.s2[mat, i] * (1 + tilt[layout.objects, i]) * common
        for alpha, code in layout.blends:
            band = band * (1 - alpha) + alpha * sig.s2[code, i] * regional
        refl[i] = band

    for y, x in layout.barges:  # a steel hull: dark in the visible, a few pixels
        refl[:, max(0, y - 1) : y + 1, max(0, x - 2) : x + 2] *= 0.6

    # haze: additive path radiance falling with wavelength, times a transmission
    wavelengths = np.array([CATALOGUE[b].wavelength_nm for b in sig.bands], np.float32)
    cloud = np.zeros((h, w), np.float32)
    if rng.uniform() < haze_probability:
        a = rng.uniform(0.02, 0.1) * np.clip(1 + 0.4 * smooth_noise(rng, (h, w), 40.0), 0.2, 2)
        t = rng.uniform(0.8, 0.95)
        refl = refl * t + a[None] * (wavelengths[:, None, None] / 490.0) ** -1.5
        cloud = np.clip(a * 2.0, 0, 0.4)
    if rng.uniform() < cloud_probability:
        cover = rng.uniform(0.05, 0.3)
        field = smooth_noise(rng, (h, w), rng.uniform(8, 25))
        thresh = np.quantile(field, 1 - cover)
        alpha = np.clip((field - thresh) / 0.6, 0, 1).astype(np.float32)
        shift = rng.uniform(30, 120) * np.array([np.cos(a0 := rng.uniform(0, 2 * np.pi)), np.sin(a0)])
        shadow = ndimage.shift(alpha, shift, order=0, mode="constant")
        k = sig.shadow_k[:, None, None]
        refl = refl * (1 - shadow[None] * (1 - k))
        refl = refl * (1 - alpha[None]) + alpha[None] * sig.cloud[:, None, None]
        cloud = np.maximum(cloud, alpha)
    for i, name in enumerate(sig.bands):
        refl[i] = ndimage.gaussian_filter(_native_resolution(refl[i], CATALOGUE[name].resolution_m), 0.5)
    refl += rng.normal(0, 0.004, refl.shape).astype(np.float32)
    refl = np.clip(refl, 0.0001, 1.2)

    s1 = np.empty((2, h, w), np.float32)
    s1_obj = rng.standard_normal((n_obj, 2)).astype(np.float32)
    for p in range(2):
        db = sig.s1_db[mat, p] + 0.6 * sig.s1_sd[mat, p] * s1_obj[layout.objects, p]
        for alpha, code in layout.blends:
            db = db * (1 - alpha) + alpha * sig.s1_db[code, p]
        lin = ndimage.gaussian_filter(10 ** (db / 10), 0.6)
        lin *= rng.gamma(SPECKLE_LOOKS, 1 / SPECKLE_LOOKS, (h, w))
        for y, x in layout.barges:
            lin[y, x] = 10 ** ((8.0 - 8.0 * p) / 10)
        s1[p] = 10 * np.log10(np.maximum(lin, 1e-5))
    score = np.clip(cloud + rng.normal(0, 0.02, (h, w)), 0, 1).astype(np.float32)
    return np.concatenate([refl, s1, score[None]]), band_names(sig)
