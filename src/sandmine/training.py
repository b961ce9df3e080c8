"""The fit loop: AOI windows streamed from the scenes, flips and rotations, validation AP each epoch, early stop."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from sandmine.core.config import TrainParams
from sandmine.core.files import atomic_path
from sandmine.core.metrics import Histogram, quantise
from sandmine.core.schema import IGNORE
from sandmine.core.windows import dihedral
from sandmine.dataset import POOL, TRAIN, VAL, Scene, Source, WindowLoader, Windows
from sandmine.device import autocast, device_of, place, resolve_device, to_device

log = logging.getLogger(__name__)


__all__ = ["Scene", "band_stats", "fit", "loss_fn", "positive_weight", "validation_ap"]


def band_stats(images: list[np.ndarray], masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and sd over masked pixels of all images ((C, H, W) each)."""
    vals = np.concatenate([img[:, m] for img, m in zip(images, masks)], axis=1)
    mean = np.nanmean(vals, axis=1)
    std = np.nanstd(vals, axis=1)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def loss_fn(kind: str, pos_weight: float) -> Loss:
    """Loss over pixels whose label is not IGNORE: weighted BCE, Dice or focal.

    The returned loss takes logits, labels and optional per-pixel weights (annotation confidence).
    """

    def loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        valid = y != IGNORE
        t = (y == 1).float()
        if not valid.any():
            return logits.sum() * 0.0
        z, t = logits[valid], t[valid]
        wv = w[valid] if w is not None else torch.ones_like(z)
        if kind == "wbce":
            pw = torch.tensor(pos_weight, device=z.device)
            bce = F.binary_cross_entropy_with_logits(z, t, pos_weight=pw, reduction="none")
            return (bce * wv).sum() / wv.sum()
        p = torch.sigmoid(z)
        if kind == "dice":
            return 1 - (2 * (wv * p * t).sum() + 1) / ((wv * p).sum() + (wv * t).sum() + 1)
        bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
        pt = p * t + (1 - p) * (1 - t)
        return ((1 - pt) ** 2 * bce * (0.75 * t + 0.25 * (1 - t)) * wv).sum() / wv.sum()

    return loss


@torch.no_grad()
def validation_ap(model: nn.Module, batches: Iterable[Sequence[torch.Tensor]], precision: str = "32") -> float:
    """AP over AOI pixels of validation windows: batches of (image, label, AOI, ...) (ignore pixels excluded),
    on the model's device."""
    model.eval()
    hist = Histogram()
    device = device_of(model)
    for x, y, a, *_ in batches:
        with autocast(device, precision):
            logits = model(to_device(x, device))
        prob = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
        y_np, keep = y.numpy(), a.numpy() & (y.numpy() != IGNORE)
        hist.add(quantise(prob), y_np == 1, keep)
    return hist.average_precision()


def positive_weight(train: Sequence[Source]) -> tuple[float, float]:
    """Training mine fraction and the BCE weight of mine pixels derived from it."""
    mine, known = (sum(c) for c in zip(*(s.label_counts() for s in train))) if train else (0, 0)
    pos = mine / known if known else 0.0
    # prior work weighted mine pixels 6–14; an uncapped ratio over-predicts at 0.5
    return pos, float(np.clip((1 - pos) / max(pos, 1e-6), 1.0, 10.0))


def _optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """AdamW; the encoder of a `Segmenter` learns at lr x `encoder_lr_scale` (frozen: not at all)."""
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    enc_ids = {id(p) for p in encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in enc_ids and p.requires_grad]
    groups = [{"params": rest, "lr": params.lr}]
    enc = [p for p in encoder.parameters() if p.requires_grad]
    if enc:
        groups.append({"params": enc, "lr": params.lr * params.encoder_lr_scale})
    return torch.optim.AdamW(groups, weight_decay=params.weight_decay)


class FeatureCache:
    """Encoder features of fixed windows, computed once: a frozen encoder's work is not repeated.

    Windows are drawn once (`windows_per_epoch` of them); each epoch visits all of them in a new
    order with a new random flip or rotation per batch, applied to features and labels alike.
    """

    def __init__(self, model: nn.Module, batches: Iterable[torch.Tensor], precision: str = "32"):
        model.eval()
        levels: list[list[torch.Tensor]] = []
        device = device_of(model)  # features stay on the model's device
        with torch.no_grad(), autocast(device, precision):
            for x in tqdm(batches, desc="encoding windows", unit="batch", leave=False):
                for k, f in enumerate(model.encoder(to_device(x, device))):  # type: ignore[operator]
                    if k == len(levels):
                        levels.append([])
                    levels[k].append(f)
                self.size = (x.shape[-2], x.shape[-1])
        self.feats = [torch.cat(lv) for lv in levels]

    def batch(self, idx: np.ndarray, k: int = 0, flip: bool = False) -> list[torch.Tensor]:
        return [dihedral(f[idx], k, flip) for f in self.feats]


def fit(
    model: nn.Module,
    train: Sequence[Source],
    val: Sequence[Source],
    params: TrainParams,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda e, m: None,
    state: Path | None = None,
    key: str = "",
) -> tuple[nn.Module, dict[str, float]]:
    """Train `model`; return the best model by validation AP and a summary.

    With `state`, everything needed to go on (model, optimiser, scheduler, random generators,
    best model so far, curves) is written there atomically after each epoch; a later call with
    the same `key` (a fingerprint of params and data) resumes after the last finished epoch and
    ends exactly where an uninterrupted run would. The file is removed when training ends.

    Windows of `params.window_px` are centred on AOI pixels of the training scenes (`Source`s:
    read from the COGs window by window, or held in memory) and read by `params.workers` DataLoader
    processes; window `i` of epoch `e` depends on the seed, `e` and `i` only, so the run is the same
    for any number of workers. Validation windows are a fixed set, read the same way each epoch. A
    frozen encoder (`model.frozen`) is run once over a fixed pool of windows (`FeatureCache`); then
    each epoch trains only the decoder.

    The model trains on `params.device` (and is returned there) at `params.precision`; windows are
    drawn and augmented on the CPU exactly as without a device, then copied.
    """
    device = resolve_device(params.device, "params.yaml: train.device")
    model = place(model, device)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    pos, pos_weight = positive_weight(train)
    loss = loss_fn(params.loss, pos_weight)
    px, batch, workers = params.window_px, params.batch_size, params.workers
    val_set = Windows(val, params.val_windows, px, params.seed, VAL)
    frozen = bool(getattr(model, "frozen", False))
    if frozen:
        pool = _Pool(WindowLoader(Windows(train, params.windows_per_epoch, px, params.seed, POOL), batch, workers))
        vpool = _Pool(WindowLoader(val_set, batch, workers))
        cache = FeatureCache(model, pool.images(), params.precision)
        vcache = FeatureCache(model, vpool.images(), params.precision)
    else:
        train_set = Windows(train, params.windows_per_epoch, px, params.seed, TRAIN, augment=True)
        windows, val_windows = WindowLoader(train_set, batch, workers), WindowLoader(val_set, batch, workers)
    opt = _optimizer(model, params)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=params.epochs)
    best_ap, best_epoch, best_state, stale = -1.0, 0, copy.deepcopy(model.state_dict()), 0
    epoch_s: list[float] = []
    history: list[tuple[int, dict[str, float]]] = []
    first = 1
    saved = _load_state(state, key)
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        rng.bit_generator.state = json.loads(saved["rng"])
        torch.set_rng_state(saved["torch_rng"])
        best_ap, best_epoch, stale = saved["best_ap"], saved["best_epoch"], saved["stale"]
        best_state = saved["best_state"]
        history = [(int(e), dict(m)) for e, m in saved["history"]]
        for e, m in history:  # the curves of the finished epochs, as if they had just run
            on_epoch(e, m)
        first = len(history) + 1
        log.info("resuming after epoch %d of %d (%s)", first - 1, params.epochs, state)
    epoch = first - 1
    for epoch in range(first, params.epochs + 1):
        if best_epoch and stale >= params.patience:
            break
        started = time.perf_counter()
        model.train()
        total, n = 0.0, 0
        if frozen:
            order = rng.permutation(params.windows_per_epoch)
            steps: Iterable = (np.sort(order[b : b + batch]) for b in range(0, len(order), batch))
        else:
            steps = windows.epoch(epoch)
        bar = tqdm(steps, total=-(-params.windows_per_epoch // batch), desc=f"epoch {epoch}/{params.epochs}",
                   unit="batch", leave=False)  # fmt: skip
        for step in bar:
            if frozen:
                idx = step
                if len(idx) < 2:
                    continue
                k, flip = int(rng.integers(4)), bool(rng.integers(2))
                y, w = (to_device(dihedral(arr[idx], k, flip), device) for arr in (pool.label, pool.weight))
                with autocast(device, params.precision):
                    logits = model.decode(cache.batch(idx, k, flip), cache.size)  # type: ignore[operator]
            else:
                x, y, _, w = step
                if len(y) < 2:  # batch norm needs two windows
                    continue
                y, w = to_device(y, device), to_device(w, device)
                with autocast(device, params.precision):
                    logits = model(to_device(x, device))
            opt.zero_grad()
            value = loss(logits[:, 0].float(), y, w)  # the loss in float32 whatever the precision
            value.backward()
            opt.step()
            total, n = total + float(value.detach()) * len(y), n + len(y)
            bar.set_postfix(loss=f"{total / max(n, 1):.4f}")
        sched.step()
        if frozen:
            ap = _cached_ap(model, vcache, vpool.label, vpool.aoi, batch, params.precision)
        else:
            ap = validation_ap(model, val_windows.epoch(), params.precision)
        epoch_s.append(time.perf_counter() - started)
        metrics = {"train_loss": total / max(n, 1), "val_ap": ap, "lr": float(sched.get_last_lr()[0])}
        on_epoch(epoch, metrics)
        history.append((epoch, metrics))
        log.info("epoch %d: loss %.4f, val AP %.4f (%.1f s)", epoch, metrics["train_loss"], ap, epoch_s[-1])
        if ap > best_ap:
            best_ap, best_epoch, best_state, stale = ap, epoch, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
        if state is not None:
            _save_state(state, key, model, opt, sched, rng, best_ap, best_epoch, best_state, stale, history)
        if stale >= params.patience:
            log.info("early stop: no better validation AP for %d epochs", stale)
            break
    if state is not None:
        state.unlink(missing_ok=True)
    model.load_state_dict(best_state)
    return model, {
        "best_val_ap": best_ap,
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "pos_weight": pos_weight,
        "train_mine_fraction": pos,
        "epoch_s": float(np.mean(epoch_s)) if epoch_s else 0.0,
    }


def _save_state(
    path: Path,
    key: str,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    rng: np.random.Generator,
    best_ap: float,
    best_epoch: int,
    best_state: dict,
    stale: int,
    history: list[tuple[int, dict[str, float]]],
) -> None:
    record = {
        "key": key,
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
        "rng": json.dumps(rng.bit_generator.state),  # 128-bit integers: kept as text
        "torch_rng": torch.get_rng_state(),
        "best_ap": best_ap,
        "best_epoch": best_epoch,
        "best_state": best_state,
        "stale": stale,
        "history": [[e, m] for e, m in history],
    }
    with atomic_path(path) as tmp:
        torch.save(record, tmp)


def _load_state(path: Path | None, key: str) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged state only costs a fresh start
        log.warning("ignoring unreadable training state %s (%s); starting afresh", path, exc)
        return None
    if saved.get("key") != key:
        log.info("training state %s belongs to other params or data; starting afresh", path)
        return None
    return dict(saved)


class _Pool:
    """Labels, AOI and weights of a fixed set of windows, kept while their images pass to the encoder once."""

    def __init__(self, windows: WindowLoader) -> None:
        self.windows: WindowLoader | None = windows
        self.label = self.aoi = self.weight = np.zeros(0)

    def images(self) -> Iterator[torch.Tensor]:
        """The image batches, in order, once; labels, AOI and weights are kept as they pass."""
        assert self.windows is not None, "a pool is encoded once"
        ys, aois, ws = [], [], []
        for x, y, a, w in self.windows.epoch():
            ys.append(y.numpy())
            aois.append(a.numpy())
            ws.append(w.numpy())
            yield x
        self.label, self.aoi, self.weight = np.concatenate(ys), np.concatenate(aois), np.concatenate(ws)
        self.windows = None  # its reading processes end


@torch.no_grad()
def _cached_ap(
    model: nn.Module, cache: FeatureCache, y: np.ndarray, a: np.ndarray, batch: int, precision: str = "32"
) -> float:
    model.eval()
    hist = Histogram()
    device = device_of(model)
    for b in range(0, len(y), batch):
        idx = np.arange(b, min(b + batch, len(y)))
        with autocast(device, precision):
            logits = model.decode(cache.batch(idx), cache.size)  # type: ignore[operator]
        prob = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
        keep = a[idx] & (y[idx] != IGNORE)
        hist.add(quantise(prob), y[idx] == 1, keep)
    return hist.average_precision()
