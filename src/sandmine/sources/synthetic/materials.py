"""Materials of the synthetic world and their Sentinel-2 / Sentinel-1 signatures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

# Material codes used in the layout's material map. Names of S2 signatures in the
# signatures file, then the Sentinel-1 class they scatter like.
MATERIALS: list[tuple[str, str, str]] = [
    ("river_water", "turbid_river_water", "calm_water"),
    ("lake_water", "clear_water", "calm_water"),
    ("plume", "very_turbid_plume_core", "rough_or_turbulent_water"),
    ("dry_sand", "dry_river_sand", "dry_sand"),
    ("wet_sand", "wet_sand", "wet_sand"),
    ("scar", "fresh_excavation_scar", "excavated_rough_sand_stockpile"),
    ("pit_pond", "pit_pond", "calm_water"),
    ("pit_pond_algal", "pit_pond_algal", "calm_water"),
    ("riparian", "riparian_vegetation", "riparian_vegetation"),
    ("crop", "cropland_green", "cropland"),
    ("soil", "bare_soil", "bare_soil"),
    ("urban", "urban_builtup", "urban"),
    ("stockpile", "dry_river_sand", "excavated_rough_sand_stockpile"),
    ("gravel_road", "bare_soil", "gravel"),
]
CODE = {name: i for i, (name, _, _) in enumerate(MATERIALS)}

# Pixel texture (relative sd of fine-scale brightness); mined sand has twice the variance.
TEXTURE = {
    "dry_sand": 0.035,
    "wet_sand": 0.05,
    "scar": 0.07,
    "stockpile": 0.05,
    "crop": 0.08,
    "soil": 0.06,
    "urban": 0.15,
    "riparian": 0.10,
    "gravel_road": 0.05,
}


@dataclass(frozen=True)
class Signatures:
    """Per-material lookup tables.

    Attributes:
        s2: (M, 12) median L2A reflectance, bands B1…B12 without B10.
        rel_sd: (M,) relative sd of brightness between objects.
        s1_db: (M, 2) median VV, VH backscatter in dB.
        s1_sd: (M, 2) sd between objects in dB.
        texture: (M,) relative sd of pixel texture.
        cloud: (12,) thick-cloud reflectance; shadow_k: (12,) shadow multipliers.
    """

    s2: np.ndarray
    rel_sd: np.ndarray
    s1_db: np.ndarray
    s1_sd: np.ndarray
    texture: np.ndarray
    cloud: np.ndarray
    shadow_k: np.ndarray
    bands: list[str]


def load_signatures(raw: dict | None = None) -> Signatures:
    """Build the lookup tables from `s2_s1_signatures.json` (the packaged copy by default)."""
    if raw is None:
        raw = json.loads(resources.files(__package__).joinpath("s2_s1_signatures.json").read_text())
    med, rel = raw["median"], raw["relative_sd_between_objects"]
    s1, s1sd = raw["s1_sigma0_dB_VV_VH_median"], raw["s1_sd_dB"]
    s2 = np.array([med[s2name] for _, s2name, _ in MATERIALS], dtype=np.float32)
    s2[CODE["stockpile"]] *= 1.12  # heaped fresh sand is brighter than the bar it sits on
    return Signatures(
        s2=s2,
        rel_sd=np.array([rel[s2name] for _, s2name, _ in MATERIALS], dtype=np.float32),
        s1_db=np.array([s1[s1name] for _, _, s1name in MATERIALS], dtype=np.float32),
        s1_sd=np.array([s1sd[s1name] for _, _, s1name in MATERIALS], dtype=np.float32),
        texture=np.array([TEXTURE.get(n, 0.03) for n, _, _ in MATERIALS], dtype=np.float32),
        cloud=np.array(med["thick_cloud"], dtype=np.float32),
        shadow_k=np.array([raw["cloud_shadow_multiplier_k"][b] for b in raw["bands"]], np.float32),
        bands=list(raw["bands"]),
    )
