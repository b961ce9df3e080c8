"""Self-supervised pretraining of an encoder on unlabelled AOI windows (MoCo v2, He et al. 2020).

Two views of one place are a positive pair: the same window seen on another date of the site
when there is one on the same grid (seasonal contrast, as SSL4EO-S12 pretrains), else the same
date; each view is shifted by up to a quarter window, flipped or rotated, and jittered per band.
A momentum-updated key encoder and a queue of past keys supply the negatives. The result is an
encoder state dict that `model.weights: ssl` loads into the train stage's model.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from sandmine.core.config import SslParams
from sandmine.core.windows import crop, dihedral, sample_centres
from sandmine.device import autocast, place, to_device

log = logging.getLogger(__name__)


@dataclass
class SiteStack:
    """Co-registered standardised images (C, H, W) of one site's dates on one grid, and its AOI mask."""

    images: list[np.ndarray]
    aoi: np.ndarray


class MoCo(nn.Module):
    """Query encoder + projection head; the key side is a momentum copy of both."""

    def __init__(self, encoder: nn.Module, width: int, dim: int = 128):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(width, 512), nn.ReLU(inplace=True), nn.Linear(512, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.encoder(x)[-1].mean((2, 3))
        return F.normalize(self.head(feat), dim=1)


def _views(
    sites: list[SiteStack], picks: list[tuple[int, int, int]], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    q: list[np.ndarray] = []
    k: list[np.ndarray] = []
    for s, r, c in picks:
        site = sites[s]
        a, b = rng.choice(len(site.images), size=2, replace=len(site.images) < 2)
        for out, img in ((q, site.images[a]), (k, site.images[b])):
            dr, dc = rng.integers(-size // 4, size // 4 + 1, size=2)
            v = crop(img, r + int(dr), c + int(dc), size, 0.0)
            turns, flip = int(rng.integers(4)), bool(rng.integers(2))
            v = dihedral(v, turns, flip)
            gain = rng.normal(1.0, 0.1, size=(v.shape[0], 1, 1)).astype(np.float32)
            shift = rng.normal(0.0, 0.1, size=(v.shape[0], 1, 1)).astype(np.float32)
            out.append(v * gain + shift)
    return np.stack(q).astype(np.float32), np.stack(k).astype(np.float32)


def pretrain(
    encoder: nn.Module,
    width: int,
    sites: list[SiteStack],
    p: SslParams,
    device: torch.device | None = None,
    precision: str = "32",
) -> tuple[nn.Module, dict[str, float]]:
    """Train `encoder` (whose last feature map has `width` channels) with MoCo; return it (on the CPU) and a summary.

    Views are drawn on the CPU as without a device; the encoder trains on `device` (default CPU)
    at `precision`.
    """
    device = device or torch.device("cpu")
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    query = place(MoCo(encoder, width), device)
    key = copy.deepcopy(query).requires_grad_(False)
    queue = F.normalize(torch.randn(p.queue, 128, generator=torch.Generator().manual_seed(p.seed)), dim=1)
    queue = queue.to(device)
    ptr = 0
    opt = torch.optim.SGD(query.parameters(), lr=p.lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.epochs)
    losses, accs = [], []
    for epoch in range(1, p.epochs + 1):
        query.train()
        key.train()
        picks = sample_centres([s.aoi for s in sites], p.windows_per_epoch, rng)
        total, hits, n = 0.0, 0, 0
        bar = tqdm(range(0, len(picks), p.batch_size), desc=f"moco {epoch}/{p.epochs}", unit="batch", leave=False)
        for b in bar:
            chunk = picks[b : b + p.batch_size]
            if len(chunk) < 2:
                continue
            xq, xk = _views(sites, chunk, p.window_px, rng)
            with autocast(device, precision):
                q = query(to_device(xq, device)).float()
            with torch.no_grad():
                for pk, pq in zip(key.parameters(), query.parameters()):
                    pk.mul_(p.momentum).add_(pq.detach(), alpha=1 - p.momentum)
                with autocast(device, precision):
                    k = key(to_device(xk, device)).float()
            logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / p.temperature
            loss = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            m = len(k)
            idx = (torch.arange(m, device=device) + ptr) % p.queue
            queue[idx] = k
            ptr = (ptr + m) % p.queue
            total += float(loss.detach()) * m
            hits += int((logits.argmax(1) == 0).sum())
            n += m
            bar.set_postfix(loss=f"{total / n:.3f}")
        sched.step()
        losses.append(total / max(n, 1))
        accs.append(hits / max(n, 1))
        log.info("moco epoch %d: loss %.4f, positive ranked first %.3f", epoch, losses[-1], accs[-1])
    return place(encoder, torch.device("cpu")), {
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "top1_first": accs[0],
        "top1_last": accs[-1],
        "epochs": p.epochs,
    }
