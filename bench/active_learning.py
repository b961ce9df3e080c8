"""Active learning on the synthetic world: test AP against labelled km², uncertainty vs random choice.

Renders a small world (the first `--sites` default sites, both labelled dates) through export,
annotate-pull, aoi and split (as `superpixels.py`). The synthetic annotator has labelled every
observation, so any window's labels exist: a round's label masks are the annotator's masks inside the
labelled windows and 255 (ignore) elsewhere. Per seed, training starts from a quarter of the training
sites fully labelled; each of `--rounds` rounds adds `--round-fraction` of the training AOI area in
`--window-px` windows chosen either by `sandmine.acquisition` (mean entropy of the current model's
probability, greedy with `--min-distance-m` between windows: what `sandmine propose` does) or at random
among the same candidate windows. After each round the random-forest baseline (`classical.fit`, the
train stage's code) is refitted and test AP pooled over the test observations' AOI pixels. Labelled
area counts AOI pixels. Writes `--out` (strategy, seed, round, labelled_km2, labelled_fraction, ap),
per-strategy means for the DVC plot in `bench/active_learning/`, and prints a table. Usage:

    python bench/active_learning.py [--sites 10] [--rounds 4] [--seeds 0 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from superpixels import world

from sandmine import acquisition, classical, prediction
from sandmine.core.config import Params, load_params
from sandmine.core.files import write_text
from sandmine.core.metrics import Histogram, quantise
from sandmine.core.raster import read_grid, write_cog
from sandmine.core.schema import IGNORE
from sandmine.scale import stitch
from sandmine.steps.common import read_split
from sandmine.steps.train import open_scenes

STRATEGIES = ("uncertainty", "random")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--window-px", type=int, default=64)
    ap.add_argument("--round-fraction", type=float, default=0.075, help="of the training AOI area, per round")
    ap.add_argument("--min-distance-m", type=float, default=1000.0)
    ap.add_argument("--trees", type=int, default=30)
    ap.add_argument("--pixels", type=int, default=60000)
    ap.add_argument("--out", type=Path, default=Path("bench/active_learning.csv"))
    ap.add_argument("--keep", type=Path, help="render the world here (and reuse it on the next run)")
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    p = load_params(a.params)
    p.model.encoder, p.model.decoder, p.model.indices = "random_forest", "none", ["NDWI", "NDVI", "MNDWI"]
    p.model.baseline.trees, p.model.baseline.pixels = a.trees, a.pixels
    torch.set_num_threads(p.train.threads)
    with contextlib.ExitStack() as stack:
        root = a.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sandmine-al-")))
        folder = world(root / "world" if a.keep else root, a.sites, a.params)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sandmine-al-run-")))
        _run(a, p, folder, work)


class Bench:
    """The rendered world, its full labels, and fitting/scoring with a given set of labelled pixels."""

    def __init__(self, p: Params, folder: Path, work: Path) -> None:
        self.p, self.folder, self.work = p, folder, work
        self.rows = read_split(folder / "split.csv")
        self.ids = {role: [r["obs_id"] for r in self.rows if r["role"] == role] for role in ("train", "val", "test")}
        self.site = {r["obs_id"]: r["site_id"] for r in self.rows}
        self.full = {k: _band1(folder / "labels" / f"{k}.tif") for k in self.ids["train"]}
        self.aoi = {k: _band1(folder / "aoi" / f"{k}.tif") > 0 for k in self.ids["train"]}
        self.px_km2 = read_grid(folder / "images" / f"{self.ids['train'][0]}.tif").pixel_area_ha / 100.0
        self.total_km2 = sum(int(m.sum()) for m in self.aoi.values()) * self.px_km2

    def labelled_km2(self, labelled: dict[str, np.ndarray]) -> float:
        return sum(int((labelled[k] & self.aoi[k]).sum()) for k in labelled) * self.px_km2

    def write_labels(self, labelled: dict[str, np.ndarray], tag: str) -> Path:
        """A labels folder: train masks kept where labelled (255 elsewhere), val and test masks whole."""
        out = self.work / tag / "labels"
        out.mkdir(parents=True)
        src = self.folder / "labels"
        for k in self.ids["train"] + self.ids["val"] + self.ids["test"]:
            (out / f"{k}.geojson").symlink_to((src / f"{k}.geojson").resolve())  # confidence weights
            if k not in self.full:
                (out / f"{k}.tif").symlink_to((src / f"{k}.tif").resolve())
        for k, full in self.full.items():
            mask = np.where(labelled[k], full, IGNORE).astype(np.uint8)
            write_cog(out / f"{k}.tif", mask, read_grid(self.folder / "labels" / f"{k}.tif"), ["label"])
        return out

    def fit_and_score(self, labels: Path, seed: int, pool_out: Path | None) -> float:
        """Refit the forest on `labels`; test AP; with `pool_out`, the train observations' probability COGs."""
        p, f = self.p, self.folder
        p.train.seed = seed
        scenes, _, _ = open_scenes(p, f / "images", labels, f / "aoi", self.rows, ("train", "val", "test"))
        chans = [*p.model.bands, *p.model.indices]
        train = [scenes[k] for k in self.ids["train"]]
        val = [scenes[k] for k in self.ids["val"]]
        model, _ = classical.fit("random_forest", train, val, chans, p.model.baseline, p.train)
        hist = Histogram()
        for k in self.ids["test"]:
            s = scenes[k]
            img, lab, aoi, _ = s.read(0, 0, *s.shape)
            prob = prediction.predict(model, img, stitch(p))
            hist.add(quantise(prob), lab == 1, aoi & (lab != IGNORE))
        if pool_out is not None:
            pool_out.mkdir(parents=True)
            for k in self.ids["train"]:
                s = scenes[k]
                prob = prediction.predict(model, s.read(0, 0, *s.shape)[0], stitch(p))
                write_cog(pool_out / f"{k}.tif", quantise(prob), s.grid, ["mine_probability"], resampling="average")
        return hist.average_precision()


def _band1(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _choose(
    b: Bench, strategy: str, pool: Path, labels: Path, labelled: dict[str, np.ndarray], km2: float,
    window_px: int, min_distance_m: float, rng: np.random.Generator,
) -> float:  # fmt: skip
    """Mark windows labelled until `km2` of AOI is added; returns the AOI km² added."""
    cands = acquisition.candidates(
        [pool / f"{k}.tif" for k in b.ids["train"]], window_px, labels=labels, aois=b.folder / "aoi"
    )
    if strategy == "uncertainty":
        order = acquisition.select(cands, len(cands), min_distance_m)
    else:
        order = [cands[i] for i in rng.permutation(len(cands))]
    added = 0.0
    for w in order:
        if added >= km2:
            break
        sl = (slice(w.row, w.row + w.height), slice(w.col, w.col + w.width))
        new = b.aoi[w.source][sl] & ~labelled[w.source][sl]
        labelled[w.source][sl] = True
        added += int(new.sum()) * b.px_km2
    return added


def _run(a: argparse.Namespace, p: Params, folder: Path, work: Path) -> None:
    start = time.perf_counter()
    b = Bench(p, folder, work)
    sites = sorted({b.site[k] for k in b.ids["train"]})
    n_start = max(1, round(len(sites) / 4))
    round_km2 = a.round_fraction * b.total_km2
    print(
        f"{len(b.ids['train'])} train observations ({len(sites)} sites, {b.total_km2:.1f} km² of AOI), "
        f"{len(b.ids['val'])} val, {len(b.ids['test'])} test; start from {n_start} site(s); "
        f"{a.rounds} rounds of {round_km2:.2f} km² in {a.window_px} px windows; random forest "
        f"{a.trees} trees on {a.pixels} pixels\n",
        flush=True,
    )
    results: list[dict] = []
    all_ap: dict[int, float] = {}
    for seed in a.seeds:
        rng = np.random.default_rng(seed)
        everything = {k: np.ones_like(m, bool) for k, m in b.full.items()}
        all_ap[seed] = b.fit_and_score(b.write_labels(everything, f"all-{seed}"), seed, None)
        results.append(_row("all", seed, -1, b.total_km2, b.total_km2, all_ap[seed]))
        print(f"seed {seed}: all labels, {b.total_km2:.1f} km², test AP {all_ap[seed]:.4f}", flush=True)
        first = set(rng.choice(sites, n_start, replace=False))
        start_labels = {k: np.full(m.shape, b.site[k] in first) for k, m in b.full.items()}
        for strategy in STRATEGIES:
            labelled = {k: m.copy() for k, m in start_labels.items()}
            pick = np.random.default_rng([seed, 1])
            for rnd in range(a.rounds + 1):
                tag = f"{strategy}-{seed}-{rnd}"
                labels = b.write_labels(labelled, tag)
                pool = work / tag / "pool"
                ap = b.fit_and_score(labels, seed, pool if rnd < a.rounds else None)
                km2 = b.labelled_km2(labelled)
                results.append(_row(strategy, seed, rnd, km2, b.total_km2, ap))
                print(f"seed {seed} {strategy:<11} round {rnd}: {km2:6.2f} km² test AP {ap:.4f}", flush=True)
                if rnd < a.rounds:
                    _choose(b, strategy, pool, labels, labelled, round_km2, a.window_px, a.min_distance_m, pick)
    _write(a.out, results)
    _summary(results, all_ap, b.total_km2, a)
    print(f"\n{time.perf_counter() - start:.0f} s; rows -> {a.out}, means -> {a.out.with_suffix('')}/")


def _row(strategy: str, seed: int, rnd: int, km2: float, total: float, ap: float) -> dict:
    return {"strategy": strategy, "seed": seed, "round": rnd, "labelled_km2": round(km2, 3),
            "labelled_fraction": round(km2 / total, 4), "ap": round(ap, 4)}  # fmt: skip


def _write(out: Path, results: list[dict]) -> None:
    keys = list(results[0])
    write_text(out, "\n".join([",".join(keys)] + [",".join(str(r[k]) for k in keys) for r in results]) + "\n")
    means = out.with_suffix("")
    means.mkdir(exist_ok=True)
    for strategy in (*STRATEGIES, "all"):
        rows = [r for r in results if r["strategy"] == strategy]
        lines = ["round,labelled_km2,ap"]
        if strategy == "all":  # a flat line across the plot: the all-labels AP
            mean_ap = np.mean([r["ap"] for r in rows])
            lo = min(r["labelled_km2"] for r in results if r["round"] == 0)
            lines += [f"-1,{lo:.3f},{mean_ap:.4f}", f"-1,{rows[0]['labelled_km2']:.3f},{mean_ap:.4f}"]
        else:
            for rnd in sorted({r["round"] for r in rows}):
                at = [r for r in rows if r["round"] == rnd]
                km2 = np.mean([r["labelled_km2"] for r in at])
                lines.append(f"{rnd},{km2:.3f},{np.mean([r['ap'] for r in at]):.4f}")
        write_text(means / f"{strategy}.csv", "\n".join(lines) + "\n")


def _summary(results: list[dict], all_ap: dict[int, float], total: float, a: argparse.Namespace) -> None:
    print("\n| strategy | round | labelled km² (share) | test AP, mean over seeds | per seed |")
    print("|---|---|---|---|---|")
    target = float(np.mean(list(all_ap.values())))
    print(f"| all labels | - | {total:.1f} (100%) | {target:.4f} | "
          f"{' / '.join(f'{v:.4f}' for v in all_ap.values())} |")  # fmt: skip
    reach: dict[str, str] = {}
    for strategy in STRATEGIES:
        for rnd in range(a.rounds + 1):
            at = [r for r in results if r["strategy"] == strategy and r["round"] == rnd]
            km2, ap = np.mean([r["labelled_km2"] for r in at]), np.mean([r["ap"] for r in at])
            print(f"| {strategy} | {rnd} | {km2:.1f} ({km2 / total:.0%}) | {ap:.4f} | "
                  f"{' / '.join(str(r['ap']) for r in at)} |")  # fmt: skip
            if strategy not in reach and ap >= target:
                reach[strategy] = f"{km2:.1f} km² ({km2 / total:.0%} of the labelled area)"
    for strategy in STRATEGIES:
        print(f"{strategy}: reaches the all-labels AP {target:.4f} with "
              f"{reach.get(strategy, f'more than {a.rounds} rounds give (not reached)')}")  # fmt: skip


if __name__ == "__main__":
    main()
