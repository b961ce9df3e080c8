"""Typed schema of params.yaml, loaded with OmegaConf structured merge."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from sandmine.bands import EXPORT_DEFAULT, INDICES, S2_L2A, check_names
from sandmine.errors import SandmineError


@dataclass
class SourceParams:
    """Where images come from: the embedded synthetic world, or real services."""

    kind: str = "synthetic"  # synthetic | gee | local
    images_dir: str = ""  # local: a folder of {obs_id}.tif (named bands) or {obs_id}.SAFE products
    rivers_file: str = ""  # a vector file of rivers (any CRS, e.g. drawn in QGIS) for real sources


@dataclass
class GeeParams:
    """Earth Engine export (source.kind: gee). Credentials come from the environment only."""

    project: str = ""  # Cloud project registered for Earth Engine
    product: str = "L2A"  # L2A | L1C (13 bands with B10)
    window_days: int = 30  # composite window centred on the observation's date
    cs_threshold: float = 0.6  # Cloud Score+ cs_cdf at or above which a pixel counts as clear
    mode: str = "batch"  # batch (tasks to a bucket) | direct (computePixels, small sites)
    bucket: str = ""
    prefix: str = "sandmine/exports"
    max_retries: int = 3  # retries of a task that failed because Earth Engine was busy
    poll_s: float = 30.0  # first polling interval; grows 1.5x up to 10 min
    cache_dir: str = "~/.cache/sandmine/gee"  # finished exports, by what determines their pixels
    rivers_asset: str = ""  # e.g. WWF/HydroSHEDS/v1/FreeFlowingRivers; empty: source.rivers_file


@dataclass
class WorldParams:
    """Knobs of the embedded synthetic world (ignored by real sources)."""

    seed: int = 7
    mine_density: float = 1.0  # scales the number of mining areas per km of river
    cloud_probability: float = 0.3  # chance that an observation has clouds
    haze_probability: float = 0.5  # chance of thin haze
    annotator_miss_ha: float = 0.4  # mines smaller than this are often missed by annotators
    previews: int = 4  # labelled observations drawn to plots/world/ for a look at the world


@dataclass
class LabelsParams:
    """How annotations are pulled and turned into masks."""

    source: str = "synthetic"  # synthetic | labelbox | geojson
    project_id: str = ""
    folder: str = ""  # geojson: a folder of {obs_id}.geojson files, any CRS
    mine_classes: list[str] = field(default_factory=lambda: ["mine"])
    ignore_classes: list[str] = field(default_factory=lambda: ["ignore"])


@dataclass
class AoiParams:
    """The area of interest: a buffer around the river."""

    rivers: str = "vector"  # vector (source's rivers file) | water_index (derived from image)
    buffer_m: float = 1000.0
    simplify_m: float = 250.0


@dataclass
class SplitParams:
    """Geographic split: sites clustered by location, whole clusters per role."""

    n_clusters: int = 5
    val_clusters: int = 1
    test_clusters: int = 1
    fold: int = 0
    seed: int = 0


@dataclass
class BaselineParams:
    """The classical baselines (model.encoder: random_forest | superpixel_gbm, decoder: none)."""

    pixels: int = 200000  # training pixels sampled for the random forest
    trees: int = 60
    depth: int = 12
    superpixel_px: int = 12  # mean superpixel side (SLIC grid step)
    compactness: float = 0.3
    boost_trees: int = 200
    boost_depth: int = 3
    boost_lr: float = 0.1


@dataclass
class ModelParams:
    """Encoder, decoder and the input channels of the segmentation model."""

    encoder: str = "resnet18"
    decoder: str = "unet"
    bands: list[str] = field(default_factory=lambda: [*S2_L2A, "VV", "VH"])
    indices: list[str] = field(default_factory=list)  # NDWI | NDVI | MNDWI, appended as channels
    weights: str | None = None  # null | ssl (the pretrain stage's encoder) | a local checkpoint file
    freeze_encoder: bool = False  # linear probing when decoder is linear
    baseline: BaselineParams = field(default_factory=BaselineParams)


@dataclass
class ConfidenceParams:
    """Loss weight of a mine polygon's pixels by its annotation confidence (other pixels weigh 1)."""

    high: float = 1.0
    medium: float = 0.75
    low: float = 0.5


@dataclass
class TrainParams:
    """The fit loop."""

    window_px: int = 128
    batch_size: int = 16
    epochs: int = 10
    windows_per_epoch: int = 384
    val_windows: int = 192
    lr: float = 1e-3
    encoder_lr_scale: float = 1.0  # encoder learning rate = lr x this (e.g. 0.1 when fine-tuning weights)
    weight_decay: float = 1e-4
    loss: str = "wbce"  # wbce | dice | focal
    confidence: ConfidenceParams = field(default_factory=lambda: ConfidenceParams())
    patience: int = 4
    seed: int = 0
    threads: int = 2
    resume: bool = True  # after an interruption, go on from the last finished epoch (same result)


@dataclass
class SslParams:
    """Self-supervised pretraining of model.encoder on unlabelled AOI windows (stage pretrain)."""

    method: str = "none"  # none | moco
    epochs: int = 8
    windows_per_epoch: int = 512
    window_px: int = 64
    batch_size: int = 32
    lr: float = 0.01
    temperature: float = 0.2
    queue: int = 2048
    momentum: float = 0.99
    seed: int = 0


@dataclass
class PredictParams:
    """Stitched sliding-window prediction."""

    window_px: int = 512
    stride_px: int = 480
    discard_px: int = 16
    batch_size: int = 1
    threshold: float = 0.5
    blend: str = "gaussian"
    workers: int = 1
    scheduler: str | None = None
    tile_rows: int = 4096
    threads: int = 2


@dataclass
class EvaluateParams:
    """Scores on held-out observations."""

    roles: list[str] = field(default_factory=lambda: ["test"])
    object_overlap: float = 0.3


@dataclass
class InferParams:
    """Monitoring outputs for observations with role `infer`."""

    min_area_ha: float = 0.2


@dataclass
class Params:
    """All of params.yaml."""

    source: SourceParams = field(default_factory=SourceParams)
    bands: list[str] = field(default_factory=lambda: list(EXPORT_DEFAULT))
    world: WorldParams = field(default_factory=WorldParams)
    gee: GeeParams = field(default_factory=GeeParams)
    labels: LabelsParams = field(default_factory=LabelsParams)
    aoi: AoiParams = field(default_factory=AoiParams)
    split: SplitParams = field(default_factory=SplitParams)
    model: ModelParams = field(default_factory=ModelParams)
    ssl: SslParams = field(default_factory=SslParams)
    train: TrainParams = field(default_factory=TrainParams)
    predict: PredictParams = field(default_factory=PredictParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    infer: InferParams = field(default_factory=InferParams)


def _valid_keys(cls: type, prefix: str) -> str:
    names = [f.name for f in fields(cls)]
    return f"valid keys under '{prefix}': {', '.join(names)}" if prefix else ", ".join(names)


def _section_class(dotted: str) -> tuple[type, str]:
    """The dataclass that holds key `dotted` (a.b.c) and the dotted path of that section."""
    cls: Any = Params
    parents: list[str] = []
    for part in dotted.split(".")[:-1]:
        sub = {f.name: f for f in fields(cls)}.get(part)
        if sub is None or not is_dataclass(sub.default_factory):
            break
        cls = sub.default_factory
        parents.append(part)
    return cls, ".".join(parents)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate params.yaml; unknown keys and wrong types name the key.

    Raises:
        SandmineError: the file is missing, not YAML, or does not fit the schema.
    """
    path = Path(path)
    if not path.exists():
        raise SandmineError("file not found", str(path), "run from the project root or pass --params")
    try:
        user = OmegaConf.load(path)
    except Exception as exc:  # yaml errors come in several types
        raise SandmineError(f"not valid YAML ({exc})", str(path)) from exc
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Params), user)
    except ConfigKeyError as exc:
        key = str(exc.full_key)
        cls, parent = _section_class(key)
        raise SandmineError(
            f"unknown key '{key}'", str(path), f"check the spelling; {_valid_keys(cls, parent)}"
        ) from exc
    except ValidationError as exc:
        raise SandmineError(
            f"wrong type for '{exc.full_key}': {str(exc.msg).splitlines()[0]}",
            str(path),
            "give a value of the type shown in src/sandmine/config.py",
        ) from exc
    except OmegaConfBaseException as exc:
        raise SandmineError(f"invalid params ({exc})", str(path)) from exc
    params: Params = OmegaConf.to_object(merged)  # type: ignore[assignment]
    _check_values(params, path)
    return params


def _check_values(p: Params, path: Path) -> None:
    """Range and choice checks that a type alone cannot express."""
    where = str(path)
    choices = {
        "source.kind": (p.source.kind, ["synthetic", "gee", "local"]),
        "gee.product": (p.gee.product, ["L2A", "L1C"]),
        "gee.mode": (p.gee.mode, ["batch", "direct"]),
        "labels.source": (p.labels.source, ["synthetic", "labelbox", "geojson"]),
        "aoi.rivers": (p.aoi.rivers, ["vector", "water_index"]),
        "train.loss": (p.train.loss, ["wbce", "dice", "focal"]),
        "ssl.method": (p.ssl.method, ["none", "moco"]),
        "predict.blend": (p.predict.blend, ["mean", "gaussian"]),
    }
    for key, (choice, valid) in choices.items():
        if choice not in valid:
            raise SandmineError(f"'{key}' is '{choice}'", where, f"use one of: {', '.join(valid)}")
    positive: dict[str, float] = {
        "aoi.buffer_m": p.aoi.buffer_m,
        "train.window_px": p.train.window_px,
        "train.batch_size": p.train.batch_size,
        "train.epochs": p.train.epochs,
        "predict.window_px": p.predict.window_px,
        "predict.stride_px": p.predict.stride_px,
        "split.n_clusters": p.split.n_clusters,
        "predict.tile_rows": p.predict.tile_rows,
        "predict.threads": p.predict.threads,
    }
    check_names(p.bands, f"{where}: bands")
    check_names(p.model.bands, f"{where}: model.bands")
    bad = [i for i in p.model.indices if i not in INDICES]
    if bad:
        raise SandmineError(f"unknown index channel(s) {bad}", f"{where}: model.indices", f"use: {', '.join(INDICES)}")
    for level, w in vars(p.train.confidence).items():
        if not 0 < w <= 1:
            raise SandmineError(f"'train.confidence.{level}' is {w}", where, "use a weight in (0, 1]")
    for key, value in positive.items():
        if value <= 0:
            raise SandmineError(f"'{key}' must be positive, got {value}", where)
    if p.predict.window_px - 2 * p.predict.discard_px < p.predict.stride_px:
        raise SandmineError(
            "prediction windows leave gaps: window_px - 2*discard_px < stride_px",
            where,
            "lower 'predict.stride_px' or 'predict.discard_px', or raise 'predict.window_px'",
        )
    if p.split.val_clusters + p.split.test_clusters >= p.split.n_clusters:
        raise SandmineError(
            "no cluster left for training: val_clusters + test_clusters >= n_clusters",
            where,
            "raise 'split.n_clusters' or hold out fewer clusters",
        )
    if p.predict.workers < 0:
        raise SandmineError(f"'predict.workers' is {p.predict.workers}", where, "use 0 (no Dask) or more")
    if not 0 < p.evaluate.object_overlap <= 1:
        raise SandmineError(
            f"'evaluate.object_overlap' is {p.evaluate.object_overlap}", where, "use a fraction in (0, 1]"
        )
    if p.train.window_px % 32:
        raise SandmineError(f"'train.window_px' is {p.train.window_px}; encoders need a multiple of 32", where)
    if p.predict.window_px % 32:
        raise SandmineError(f"'predict.window_px' is {p.predict.window_px}; encoders need a multiple of 32", where)
