"""Annotators of the synthetic world: they draw what a person would, as a Labelbox export row.

Polygons are simplified and their vertices jittered (boundary error), small mines are often
missed, each polygon gets a `confidence`, and ambiguous areas are marked `ignore`. The row has
the shape of a Labelbox geospatial (tile layer) project export, so the real parser reads it.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import Affine
from shapely.geometry import Polygon, mapping

from sandmine.core.raster import pixels_to_map, to_crs
from sandmine.sources.synthetic.layout import Layout

PROJECT_ID = "synthetic-sandmine-project"


def _id(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:25]


def _drawn(rng: np.random.Generator, poly: Polygon, jitter_px: float) -> Polygon:
    """A polygon as a person clicks it: fewer vertices, each off by about `jitter_px`."""
    simple = poly.simplify(1.2)
    if simple.geom_type != "Polygon" or simple.is_empty:
        simple = poly.convex_hull
    xy = np.asarray(simple.exterior.coords)[:-1]
    xy = xy + rng.normal(0, jitter_px, xy.shape)
    drawn = Polygon(xy).buffer(0)
    if drawn.geom_type != "Polygon":  # a bow-tie repaired into pieces: keep the largest
        drawn = max(getattr(drawn, "geoms", [drawn]), key=lambda g: g.area)
    return drawn


def annotate(
    layout: Layout,
    obs_id: str,
    date: dt.date,
    crs: CRS,
    transform: Affine,
    rng: np.random.Generator,
    miss_ha: float,
) -> dict:
    """One Labelbox export row (geospatial project) for an observation."""
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform

    def geojson(poly: Polygon) -> dict:
        return mapping(to_crs(pixels_to_map(poly, transform), crs, "EPSG:4326"))

    objects = []
    for mine, state in layout.mines:
        area_ha = mine.shape.area / 100.0
        miss = 0.5 if area_ha < miss_ha else 0.04
        if rng.uniform() < miss:
            continue
        low = rng.uniform() < (0.6 if state == "abandoned" else 0.3 if area_ha < 1 else 0.1)
        objects.append(
            _object(
                "mine",
                geojson(_drawn(rng, mine.shape, 0.8)),
                "low" if low else "high",
                _id(obs_id, "mine", mine.mine_id),
            )
        )
    for k, poly in enumerate(layout.ignore):
        objects.append(_object("ignore", geojson(poly), "low", _id(obs_id, "ignore", k)))
    h, w = layout.material.shape
    west, north = to_lonlat(*(transform @ (0, 0)))
    east, south = to_lonlat(*(transform @ (w, h)))
    activity = "yes" if any(o["name"] == "mine" for o in objects) else "no"
    return {
        "data_row": {
            "id": _id(obs_id, "row"),
            "global_key": obs_id,
            "row_data": {
                "tile_layer_url": f"https://tiles.invalid/synthetic/{obs_id}/{{z}}/{{x}}/{{y}}.png",
                "epsg": "EPSG4326",
                "bounds": [[south, west], [north, east]],
                "min_zoom": 10,
                "max_zoom": 17,
                "version": 2,
            },
            "details": {"dataset_name": "sandmine-synthetic", "created_at": f"{date.isoformat()}T00:00:00Z"},
        },
        "media_attributes": {"asset_type": "tms_geo"},
        "projects": {
            PROJECT_ID: {
                "name": "sandmine synthetic",
                "labels": [
                    {
                        "label_kind": "Default",
                        "label_details": {"created_by": f"annotator-{int(rng.integers(1, 6))}@synthetic.invalid"},
                        "annotations": {
                            "objects": objects,
                            "classifications": [_radio("mine activity", activity, _id(obs_id, "activity"))],
                            "relationships": [],
                        },
                    }
                ],
                "project_details": {"workflow_status": "DONE", "task_name": "Review"},
            }
        },
    }


def _radio(name: str, answer: str, fid: str) -> dict:
    return {
        "feature_id": fid,
        "name": name,
        "value": name.replace(" ", "_"),
        "radio_answer": {"name": answer, "value": answer, "classifications": []},
    }


def _object(name: str, geometry: dict, confidence: str, fid: str) -> dict:
    return {
        "feature_id": fid,
        "name": name,
        "value": name,
        "annotation_kind": "ImagePolygon",
        "classifications": [_radio("confidence", confidence, fid + "c")],
        "geojson": geometry,
    }
