"""Full fine-tuning vs frozen encoder vs LoRA (`model.finetune`): val AP, seconds per epoch, trainable parameters.

Runs the train stage's own model set-up (`steps.train.build_model`: pretrained weights, then the
encoder frozen or given peft adapters) and fit loop on the default world's training and
validation scenes (run `dvc repro` first, or point `--data` at a folder with images/, labels/,
aoi/ and split.csv). Everything else comes from params.yaml; the options shrink the run to fit a
small machine. Seconds per epoch are the whole fit over the epochs run (a frozen encoder's one
pass over the window pool is charged to it). Usage:

    python bench/finetune.py [--encoder vit_small] [--decoder progressive] [--weights satmae.pth]
                             [--epochs 3] [--windows 96] [--window-px 64] [--modes full frozen lora]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from sandmine import training
from sandmine.core.config import load_params
from sandmine.steps.common import read_split
from sandmine.steps.train import build_model, open_scenes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="vit_small")
    ap.add_argument("--decoder", default="progressive")
    ap.add_argument("--weights", default=None, help="a SatMAE / SSL4EO-S12 checkpoint (default: random init)")
    ap.add_argument("--modes", nargs="+", default=["full", "frozen", "lora"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--windows", type=int, default=None, help="training windows per epoch (params.yaml's by default)")
    ap.add_argument("--val-windows", type=int, default=None)
    ap.add_argument("--window-px", type=int, default=None)
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    p = load_params(a.params)
    t = p.train
    p.train = replace(
        t,
        epochs=a.epochs,
        patience=a.epochs + 1,  # no early stop: equal epochs for every mode
        windows_per_epoch=a.windows or t.windows_per_epoch,
        val_windows=a.val_windows or t.val_windows,
        window_px=a.window_px or t.window_px,
    )
    torch.set_num_threads(p.train.threads)
    rows = read_split(a.data / "split.csv")
    scenes, _, _ = open_scenes(p, a.data / "images", a.data / "labels", a.data / "aoi", rows, ("train", "val"))
    train = [scenes[r["obs_id"]] for r in rows if r["role"] == "train"]
    val = [scenes[r["obs_id"]] for r in rows if r["role"] == "val"]
    chans = [*p.model.bands, *p.model.indices]
    print(
        f"{a.encoder} + {a.decoder}, weights {a.weights or 'random'}: {len(train)} training scenes, "
        f"{p.train.windows_per_epoch} windows of {p.train.window_px} px per epoch, {p.train.val_windows} validation "
        f"windows, {a.epochs} epochs, {p.train.threads} threads, lora rank {p.model.lora_rank} alpha "
        f"{p.model.lora_alpha}\n"
    )
    print("| finetune | trainable parameters | total | val AP | s per epoch |")
    print("|---|---|---|---|---|")
    for mode in a.modes:
        p.model = replace(p.model, encoder=a.encoder, decoder=a.decoder, weights=a.weights, finetune=mode)
        torch.manual_seed(p.train.seed)
        model = build_model(p, chans, None, {})
        trainable = sum(q.numel() for q in model.parameters() if q.requires_grad)
        total = sum(q.numel() for q in model.parameters())
        start = time.perf_counter()
        _, summary = training.fit(model, train, val, p.train)
        per_epoch = (time.perf_counter() - start) / summary["epochs_run"]
        print(f"| {mode} | {trainable:,} | {total:,} | {summary['best_val_ap']:.4f} | {per_epoch:.1f} |", flush=True)


if __name__ == "__main__":
    main()
