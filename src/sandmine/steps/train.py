"""Stage train: scenes read from their COGs, a deep model or a classical baseline fitted, a checkpoint written."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from sandmine import calibration, classical, models, prediction, scale, training
from sandmine.core.bands import read_names
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.files import atomic_path, round_metrics, write_json
from sandmine.core.metrics import Histogram
from sandmine.dataset import CogScene, Source, TileCache, band_stats
from sandmine.device import resolve_device
from sandmine.models import baselines, lora, pretrained
from sandmine.steps.common import read_split
from sandmine.steps.scoring import add_scored

log = logging.getLogger(__name__)


def open_scenes(
    p: Params, images: Path, labels: Path, aois: Path, rows: list[dict], roles: tuple[str, ...]
) -> tuple[dict[str, CogScene], np.ndarray, np.ndarray]:
    """Training and validation scenes on their COGs, standardised with statistics of the training split.

    Nothing is read whole: the statistics come from one streaming pass over the training images.
    Returns the scenes by obs_id, and the per-channel mean and sd (bands, then index channels).
    """
    names = read_names(p.model.bands, p.model.indices)
    train_ids = [r["obs_id"] for r in rows if r["role"] == "train"]
    mean, std = band_stats(
        [images / f"{k}.tif" for k in train_ids], [aois / f"{k}.tif" for k in train_ids], names, p.model.bands,
        p.model.indices,
    )  # fmt: skip
    weights, cache = vars(p.train.confidence), TileCache(p.train.cache_mb)
    scenes = {
        k: CogScene(k, images / f"{k}.tif", labels / f"{k}.tif", aois / f"{k}.tif", names, p.model.bands,
                    p.model.indices, mean, std, weights, cache)
        for k in (r["obs_id"] for r in rows if r["role"] in roles)
    }  # fmt: skip
    return scenes, mean, std


def fingerprint(p: Params, scenes: list[Source], mean: np.ndarray, std: np.ndarray, ssl_encoder: Path | None) -> str:
    """What a saved training state must match to be resumed: model and train params (but `resume`,
    `workers` and `cache_mb`, which do not change the result), the scenes (ids, shapes, label and AOI counts, band
    statistics) and the pretrained encoder file."""
    h = hashlib.sha256()
    train_params = {k: v for k, v in asdict(p.train).items() if k not in ("resume", "workers", "cache_mb")}
    h.update(json.dumps([asdict(p.model), train_params], sort_keys=True, default=str).encode())
    for s in scenes:
        h.update(f"{s.obs_id}:{s.shape}:{s.label_counts()}:{int(s.aoi_counts().sum())}".encode())
    h.update(mean.tobytes() + std.tobytes())
    if ssl_encoder is not None and ssl_encoder.exists():
        h.update(hashlib.sha256(ssl_encoder.read_bytes()).digest())
    return h.hexdigest()


def run(
    p: Params,
    images: Path,
    labels: Path,
    aois: Path,
    split_csv: Path,
    model_out: Path,
    metrics: Path,
    timing: Path,
    on_epoch: Callable[[int, dict[str, float]], None],
    ssl_encoder: Path | None = None,
    state: Path | None = None,
) -> None:
    models.check(p.model.encoder, p.model.decoder)
    if p.model.encoder in models.BASELINES and p.model.finetune != "full":
        raise SandmineError(
            f"model.finetune: {p.model.finetune} applies to an encoder; '{p.model.encoder}' is a classical baseline",
            "params.yaml: model.finetune",
            "set model.finetune: full",
        )
    log.info("training on %s", resolve_device(p.train.device, "params.yaml: train.device"))  # before reading scenes
    torch.set_num_threads(p.train.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rows = read_split(split_csv)
    scenes, mean, std = open_scenes(p, images, labels, aois, rows, ("train", "val"))
    train = [scenes[r["obs_id"]] for r in rows if r["role"] == "train"]
    val = [scenes[r["obs_id"]] for r in rows if r["role"] == "val"]
    chans = [*p.model.bands, *p.model.indices]
    torch.manual_seed(p.train.seed)
    start = time.perf_counter()
    meta: dict = {}
    if p.model.encoder in models.BASELINES:
        model, summary = classical.fit(p.model.encoder, train, val, chans, p.model.baseline, p.train)
        meta["baseline"] = baselines.shape_of(model)
        trainable, total = lora.parameter_counts(model)
        on_epoch(1, {"val_ap": summary["best_val_ap"]})  # one "epoch": the curves exist for every model
    else:
        model = build_model(p, chans, ssl_encoder, meta)
        trainable, total = lora.parameter_counts(model)  # as it trains: adapters count, before they are merged
        key = fingerprint(p, [*train, *val], mean, std, ssl_encoder if p.model.weights == "ssl" else None)
        model, summary = training.fit(model, train, val, p.train, on_epoch, state if p.train.resume else None, key)
        if p.model.finetune == "lora":
            log.info("merged %d LoRA adapters into the encoder's weights", lora.merge(model))
    train_s = time.perf_counter() - start
    log.info("trained in %.0f s", train_s)
    meta.update(
        {
            "encoder": p.model.encoder,
            "decoder": p.model.decoder,
            "bands": list(p.model.bands),
            "indices": list(p.model.indices),
            "frozen": p.model.finetune == "frozen",
            "finetune": p.model.finetune,
            "mean": mean.tolist(),
            "std": std.tolist(),
            "window_px": p.train.window_px,
            "res_m": float(np.median([s.grid.res_m for s in train])),  # what prediction checks images against
            "train": {k: (vars(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in vars(p.train).items()},
        }
    )
    meta["thresholds"], calib = calibrate(p, model, meta, images, labels, aois, [s.obs_id for s in val])
    with atomic_path(model_out) as tmp:
        torch.save(models.save_checkpoint(model, meta), tmp)
    # timings are measurements of this machine, not results: kept apart from the reproducible metrics
    write_json(timing, round_metrics({"train_s": train_s, "epoch_s": summary.pop("epoch_s", train_s)}))
    summary.update(calib)
    summary["parameters"], summary["trainable_parameters"] = total, trainable
    write_json(metrics, round_metrics(summary))


def build_model(p: Params, chans: list[str], ssl_encoder: Path | None, meta: dict) -> torch.nn.Module:
    """The deep model to train, as `model.finetune` asks: pretrained encoder weights (if any) loaded,
    then the encoder frozen (`frozen`) or given LoRA adapters (`lora`, recorded in `meta["lora"]`)."""
    model = models.build(p.model.encoder, p.model.decoder, chans, p.model.finetune == "frozen")
    if p.model.weights:
        path = ssl_encoder if p.model.weights == "ssl" and ssl_encoder else Path(p.model.weights)
        loaded = pretrained.load_into(model, path, chans)  # type: ignore[arg-type]
        log.info("encoder weights from %s: %s", path, loaded)
    if p.model.finetune == "lora":  # after the weights: adapters rename the layers they wrap
        m = p.model
        meta["lora"] = lora.apply(model, m.encoder, m.lora_rank, m.lora_alpha, m.lora_dropout)
        log.info("LoRA adapters (rank %d) on %d modules of %s", m.lora_rank, meta["lora"]["modules"], m.encoder)
    return model


def calibrate(
    p: Params, model: torch.nn.Module, meta: dict, images: Path, labels: Path, aois: Path, val_ids: list[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """The operating threshold of each `calibration.METHODS` on the validation observations, and scores.

    The observations are predicted exactly as evaluate predicts test observations (stitched,
    streamed from the image COGs, `predict.*` stitching), so the threshold transfers.
    """
    hist = Histogram()
    with tempfile.TemporaryDirectory(prefix="sandmine-calibrate-") as tmp:
        stitch = scale.stitch(p.predict)
        for obs_id in val_ids:
            prediction.predict_file(model, meta, images / f"{obs_id}.tif", Path(tmp) / f"{obs_id}.tif", stitch)
            add_scored(hist, obs_id, Path(tmp), images, labels, aois)
    if hist.pos.sum() == 0:
        log.warning("no mine pixel in the val observations %s: operating thresholds left at 0.5", val_ids)
        thresholds = dict.fromkeys(calibration.METHODS, 0.5)
    else:
        thresholds = {m: calibration.operating_threshold(hist, m) for m in calibration.METHODS}
    out: dict[str, float] = {"val_pixel_ap": hist.average_precision(), "val_best_f1": hist.best_f1()[0]}
    out["val_ece"] = calibration.expected_calibration_error(hist)
    for method, thr in thresholds.items():
        tp, fp, fn, _ = hist.counts(thr)
        out[f"val_threshold_{method}"] = thr
        out[f"val_f1_{method}"] = hist.at(thr)["f1"]
        out[f"val_area_ratio_{method}"] = (tp + fp) / max(tp + fn, 1)  # predicted / labelled mined area
        log.info("operating point %s: threshold %.3f, val F1 %.3f", method, thr, out[f"val_f1_{method}"])
    return thresholds, out
