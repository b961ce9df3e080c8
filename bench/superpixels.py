"""Superpixel baseline before (hand-written SLIC) and after (scikit-image's SLIC): time, connectivity, AP.

Renders a small synthetic world (the first `--sites` sites of the default catalogue, both labelled
dates) through the export, annotate-pull, aoi and split steps into a temporary folder, then fits
the `superpixel_gbm` baseline on its train observations with each SLIC and prints: seconds of one
SLIC of a `--scene-px` square scene (observations mirrored and tiled to that size), the share of
superpixels that are more than one 4-connected piece, fit seconds, prediction seconds of that scene
through the stitched inference, and validation AP (the train stage's `best_val_ap`). The hand-written
SLIC is read from git (`--before`, the last commit that had it). Usage:

    python bench/superpixels.py [--sites 8] [--scene-px 1000] [--before 32f0841] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from sandmine import classical, prediction
from sandmine.core.config import Params, load_params
from sandmine.models import baselines
from sandmine.scale import stitch
from sandmine.sources.synthetic.catalogue import LABELLED_DATES, catalogue, observations_csv, sites_geojson
from sandmine.steps import annotate_pull, aoi, export, split
from sandmine.steps.common import read_split
from sandmine.steps.train import open_scenes


def world(folder: Path, n_sites: int, params: str) -> Path:
    """The steps up to split on the first `n_sites` default sites, in `folder` (kept if already there)."""
    p = load_params(params)
    if (folder / "split.csv").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    sites = catalogue()[:n_sites]
    (folder / "sites.geojson").write_text(json.dumps(sites_geojson(sites)))
    (folder / "observations.csv").write_text(observations_csv([s[0] for s in sites], LABELLED_DATES, {}))
    export.run(p, folder / "sites.geojson", folder / "observations.csv", folder / "images", folder / "source")
    annotate_pull.run(p, folder / "source", folder / "images", folder / "labels", folder / "labels.json")
    aoi.run(p, folder / "images", folder / "source" / "rivers.geojson", folder / "aoi")
    split.run(
        p, folder / "sites.geojson", folder / "observations.csv", folder / "labels", folder / "split.csv",
        folder / "split.json", folder / "split.png",
    )  # fmt: skip
    return folder


def hand_written(ref: str) -> Callable[..., np.ndarray]:
    """The hand-written SLIC of commit `ref`, numbered 1..K as scikit-image numbers superpixels."""
    src = subprocess.run(
        ["git", "show", f"{ref}:src/sandmine/models/baselines.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_baselines.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_baselines", path)
    assert spec and spec.loader
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    shutil.rmtree(path.parent)  # loaded: the copy is not needed on disk

    def slic(image: np.ndarray, step: int, compactness: float, mask: np.ndarray | None = None) -> np.ndarray:
        return old.slic(image, step, compactness) + 1  # it knew no mask: it segmented every pixel

    return slic


def pieces(seg: np.ndarray) -> float:
    """Share of superpixels made of more than one 4-connected piece."""
    ids = np.unique(seg[seg > 0])
    return float(np.mean([ndimage.label(seg == s)[1] > 1 for s in ids]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=8)
    ap.add_argument("--scene-px", type=int, default=1000)
    ap.add_argument("--before", default="32f0841", help="a commit with the hand-written SLIC")
    ap.add_argument("--keep", type=Path, help="render the world here (and reuse it on the next run)")
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    p = load_params(a.params)
    p.model.encoder, p.model.decoder, p.model.indices = "superpixel_gbm", "none", ["NDWI", "NDVI", "MNDWI"]
    torch.set_num_threads(p.train.threads)
    with contextlib.ExitStack() as stack:  # the world is deleted at the end unless --keep names its folder
        root = a.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sandmine-sp-")))
        _run(a, p, world(root, a.sites, a.params))


def _run(a: argparse.Namespace, p: Params, folder: Path) -> None:
    rows = read_split(folder / "split.csv")
    scenes, _, _ = open_scenes(p, folder / "images", folder / "labels", folder / "aoi", rows, ("train", "val"))
    train = [scenes[r["obs_id"]] for r in rows if r["role"] == "train"]
    val = [scenes[r["obs_id"]] for r in rows if r["role"] == "val"]
    chans = [*p.model.bands, *p.model.indices]
    largest = max(val, key=lambda s: s.shape[0] * s.shape[1])  # streamed scenes: read this one whole
    big = largest.read(0, 0, *largest.shape)[0]
    reps = [-(-a.scene_px // n) for n in big.shape[1:]]
    scene = np.tile(np.concatenate([big, big[:, ::-1]], 1), (1, *reps))[:, : a.scene_px, : a.scene_px].copy()
    print(
        f"{len(train)} train and {len(val)} val observations of {a.sites} sites, {len(chans)} channels; "
        f"superpixel_px {p.model.baseline.superpixel_px}, compactness {p.model.baseline.compactness}; "
        f"{p.train.threads} threads\n"
    )
    print("| SLIC | 1 SLIC of the scene (s) | superpixels | in pieces | fit (s) | predict scene (s) | val AP |")
    print("|---|---|---|---|---|---|---|")
    bp = p.model.baseline
    for name, slic in (("hand-written", hand_written(a.before)), ("scikit-image", baselines.slic)):
        classical.slic = baselines.slic = slic  # type: ignore[attr-defined]  # both fit and forward use it
        start = time.perf_counter()
        seg = slic(scene, bp.superpixel_px, bp.compactness)
        slic_s = time.perf_counter() - start
        start = time.perf_counter()
        model, summary = classical.fit("superpixel_gbm", train, val, chans, bp, p.train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        prediction.predict(model, scene, stitch(p.predict))
        predict_s = time.perf_counter() - start
        print(
            f"| {name} | {slic_s:.2f} | {len(np.unique(seg[seg > 0]))} | {pieces(seg):.1%} | {fit_s:.1f} | "
            f"{predict_s:.1f} | {summary['best_val_ap']:.4f} |",
            flush=True,
        )
    kept = f"; world kept in {folder}" if a.keep else ""
    print(f"\nscene: {a.scene_px} x {a.scene_px} px (val observations mirrored and tiled){kept}")


if __name__ == "__main__":
    main()
