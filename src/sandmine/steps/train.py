"""Stage train: load scenes, fit, write a self-describing checkpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sandmine import models, training
from sandmine.bands import normalise, to_model_units
from sandmine.config import Params
from sandmine.files import atomic_path, round_metrics, write_json
from sandmine.steps.common import read_split, scene

log = logging.getLogger(__name__)


def run(
    p: Params,
    images: Path,
    labels: Path,
    aois: Path,
    split_csv: Path,
    model_out: Path,
    metrics: Path,
    on_epoch: Callable[[int, dict[str, float]], None],
) -> None:
    models.check(p.model.encoder, p.model.decoder)
    torch.set_num_threads(p.train.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rows = read_split(split_csv)
    raw = {
        r["obs_id"]: scene(r["obs_id"], p.model.bands, images, labels, aois)
        for r in rows
        if r["role"] in ("train", "val")
    }
    train_ids = [r["obs_id"] for r in rows if r["role"] == "train"]
    units = {k: to_model_units(v[0], p.model.bands) for k, v in raw.items()}
    mean, std = training.band_stats([units[k] for k in train_ids], [raw[k][2] for k in train_ids])
    scenes = {k: training.Scene(k, normalise(v[0], p.model.bands, mean, std), v[1], v[2]) for k, v in raw.items()}
    torch.manual_seed(p.train.seed)
    model = models.build(p.model.encoder, p.model.decoder, len(p.model.bands))
    start = time.perf_counter()
    model, summary = training.fit(
        model,
        [scenes[k] for k in train_ids],
        [scenes[r["obs_id"]] for r in rows if r["role"] == "val"],
        p.train,
        on_epoch,
    )
    log.info("trained in %.0f s", time.perf_counter() - start)
    ckpt = models.save_checkpoint(
        model,
        {
            "encoder": p.model.encoder,
            "decoder": p.model.decoder,
            "bands": list(p.model.bands),
            "mean": mean.tolist(),
            "std": std.tolist(),
            "window_px": p.train.window_px,
            "train": {k: v for k, v in vars(p.train).items()},
        },
    )
    with atomic_path(model_out) as tmp:
        torch.save(ckpt, tmp)
    summary["parameters"] = sum(t.numel() for t in model.parameters())
    write_json(metrics, round_metrics(summary))
