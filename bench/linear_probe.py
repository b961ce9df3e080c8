"""Seconds per epoch: linear probing (frozen encoder, features cached once) vs fine-tuning the same model.

Runs on the default world's training and validation scenes (run `dvc repro` first). Per-epoch
time is the whole fit (including encoding the window pool once, for the probe) over the epochs
run, so the probe's one-time cost is charged to it. Usage:

    python bench/linear_probe.py [--encoders resnet18 resnet50] [--epochs 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from sandmine import models, training
from sandmine.core.config import load_params
from sandmine.steps.common import read_split
from sandmine.steps.train import open_scenes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--decoder", default="linear")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    p = load_params(a.params)
    p.train.epochs, p.train.patience = a.epochs, a.epochs + 1  # no early stop: equal epochs for both
    torch.set_num_threads(p.train.threads)
    rows = read_split(Path("data/split.csv"))
    scenes, _, _ = open_scenes(p, Path("data/images"), Path("data/labels"), Path("data/aoi"), rows, ("train", "val"))
    train = [scenes[r["obs_id"]] for r in rows if r["role"] == "train"]
    val = [scenes[r["obs_id"]] for r in rows if r["role"] == "val"]
    chans = [*p.model.bands, *p.model.indices]
    print(
        f"{len(train)} training scenes, {p.train.windows_per_epoch} windows of {p.train.window_px} px per epoch, "
        f"{p.train.val_windows} validation windows, {a.epochs} epochs, {p.train.threads} threads\n"
    )
    print("| encoder + decoder | mode | s total | s per epoch | val AP | speed-up |")
    print("|---|---|---|---|---|---|")
    for enc in a.encoders:
        per: dict[bool, float] = {}
        for frozen in (False, True):
            torch.manual_seed(0)
            model = models.build(enc, a.decoder, chans, frozen=frozen)
            start = time.perf_counter()
            _, summary = training.fit(model, train, val, p.train)
            total = time.perf_counter() - start
            per[frozen] = total / summary["epochs_run"]
            speed = f"{per[False] / per[True]:.1f}x" if frozen else "1.0x"
            mode = "linear probe (frozen)" if frozen else "fine-tune"
            print(
                f"| {enc} + {a.decoder} | {mode} | {total:.1f} | {per[frozen]:.1f} | "
                f"{summary['best_val_ap']:.4f} | {speed} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
