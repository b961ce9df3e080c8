"""Stage pretrain: self-supervised pretraining of model.encoder on unlabelled AOI windows (or nothing)."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sandmine import models, ssl
from sandmine.core.bands import channels, read_names
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.files import atomic_path, round_metrics, write_json
from sandmine.core.raster import read_image, read_mask
from sandmine.device import resolve_device
from sandmine.steps.common import read_split
from sandmine.training import band_stats

log = logging.getLogger(__name__)
# Observations whose images (never labels) pretraining may see. Test observations are left out
# so the held-out score stays a score on imagery no part of training has seen.
ROLES = ("train", "val", "infer")


def run(p: Params, images: Path, aois: Path, split_csv: Path, out: Path, metrics: Path) -> None:
    chans = [*p.model.bands, *p.model.indices]
    record: dict[str, Any] = {
        "kind": "sandmine-ssl",
        "method": p.ssl.method,
        "encoder": p.model.encoder,
        "channels": chans,
    }
    if p.ssl.method == "none":
        with atomic_path(out) as tmp:
            torch.save(record, tmp)
        write_json(metrics, {"method": "none"})
        return
    if p.model.encoder in models.BASELINES:
        raise SandmineError(
            f"ssl.method is {p.ssl.method} but model.encoder is the {p.model.encoder} baseline",
            "params.yaml: ssl.method",
            "set ssl.method: none, or pick a deep encoder",
        )
    device = resolve_device(p.train.device, "params.yaml: train.device")  # before the images are read
    torch.set_num_threads(p.train.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    names = read_names(p.model.bands, p.model.indices)
    by_site: dict[str, list[str]] = defaultdict(list)
    for r in read_split(split_csv):
        if r["role"] in ROLES:
            by_site[r["site_id"]].append(r["obs_id"])
    sites, raw_aois = [], []
    for site_id in sorted(by_site):
        imgs = [read_image(images / f"{o}.tif", names) for o in by_site[site_id]]
        # dates on other grids cannot pair pixel by pixel: each grid is a site of its own
        keys = [(i.grid.crs.to_string(), tuple(i.grid.transform), i.grid.height, i.grid.width) for i in imgs]
        for key in sorted(set(keys)):
            ids = [o for o, k in zip(by_site[site_id], keys) if k == key]
            same = [i for i, k in zip(imgs, keys) if k == key]
            aoi = np.any([read_mask(aois / f"{o}.tif", same[0].grid) > 0 for o in ids], axis=0)
            sites.append([channels(i.data, names, p.model.bands, p.model.indices) for i in same])
            raw_aois.append(aoi)
    mean, std = band_stats([img for s in sites for img in s], [a for s, a in zip(sites, raw_aois) for _ in s])
    prepared = [
        ssl.SiteStack([(x - mean[:, None, None]) / std[:, None, None] for x in s], a) for s, a in zip(sites, raw_aois)
    ]
    log.info(
        "pretraining on %d sites, %d observations (%s)", len(prepared), sum(len(s.images) for s in prepared), device
    )
    torch.manual_seed(p.ssl.seed)  # the encoder's initial weights come from the seed like every other draw
    model = models.build(p.model.encoder, "progressive" if p.model.encoder.startswith("vit") else "linear", chans)
    encoder: Any = model.encoder
    encoder, summary = ssl.pretrain(encoder, encoder.channels[-1], prepared, p.ssl, device, p.train.precision)
    record.update(encoder_class=type(encoder).__name__, state_dict=encoder.state_dict())
    with atomic_path(out) as tmp:
        torch.save(record, tmp)
    write_json(metrics, round_metrics(summary))
