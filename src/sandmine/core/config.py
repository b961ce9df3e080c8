"""Typed schema of params.yaml, loaded with OmegaConf structured merge."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from sandmine.core.bands import CATALOGUE, EXPORT_DEFAULT, INDICES, S2_L2A, canonical
from sandmine.core.errors import SandmineError

# Valid values of a field are declared once, beside it: `param(default, Range(...) | Choice(...) | Items(...))`.
# One check (`check_fields`) applies them to params.yaml; `knob(key).parse` applies them to command-line options.


class Spec:
    """The valid values of one field; `str(spec)` completes "must be ..."."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def detail(self, value: Any) -> str:
        """What exactly is wrong with `value`, beyond the rule ("" when the rule says it all)."""
        return ""


class Range(Spec):
    """Numbers within inclusive (`ge`, `le`) and exclusive (`gt`, `lt`) bounds, optionally multiples of a step."""

    def __init__(
        self,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        multiple_of: int | None = None,
    ) -> None:
        self.ge, self.gt, self.le, self.lt, self.multiple_of = ge, gt, le, lt, multiple_of

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        checks = [
            self.ge is None or value >= self.ge,
            self.gt is None or value > self.gt,
            self.le is None or value <= self.le,
            self.lt is None or value < self.lt,
            self.multiple_of is None or value % self.multiple_of == 0,
        ]
        return all(checks) and value == value  # NaN fails every bound

    def __str__(self) -> str:
        lo = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else ""
        hi = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else ""
        ends = (("≥", self.ge), (">", self.gt), ("≤", self.le), ("<", self.lt))
        bounds = f"in {lo}, {hi}" if lo and hi else " ".join(f"{op} {v:g}" for op, v in ends if v is not None)
        return f"a multiple of {self.multiple_of} and {bounds}" if self.multiple_of else bounds or "any number"


class Choice(Spec):
    """One of a few names."""

    def __init__(self, *values: str) -> None:
        self.values = values

    def accepts(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return f"one of: {' | '.join(self.values)}"


class Items(Spec):
    """A list, non-empty unless `empty_ok`, of names from `values` (any names when none are given)."""

    def __init__(self, *values: str, empty_ok: bool = False) -> None:
        self.values, self.empty_ok = values, empty_ok

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list) and (self.empty_ok or bool(value)) and not self._unknown(value)

    def _unknown(self, value: list[Any]) -> list[Any]:
        return [v for v in value if self.values and v not in self.values]

    def __str__(self) -> str:
        kind = "a list" if self.empty_ok else "a non-empty list"
        return f"{kind} of: {' | '.join(self.values)}" if self.values else kind

    def detail(self, value: Any) -> str:
        unknown = self._unknown(value) if isinstance(value, list) else []
        out = f" ({', '.join(map(repr, unknown))} unknown)" if unknown and len(value) > 1 else ""
        spelt = {v: canonical(v) for v in unknown if isinstance(v, str) and canonical(v) in self.values}
        if spelt:  # band names as ESA, SNAP or an image's descriptions write them
            out += f"; write {', '.join(f'{a} as {b}' for a, b in spelt.items())}"
        return out


class Pattern(Spec):
    """Text that matches a regular expression, described in `words` ("auto | cpu | cuda | cuda:N")."""

    def __init__(self, regex: str, words: str) -> None:
        self.regex, self.words = regex, words

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None

    def __str__(self) -> str:
        return f"one of: {self.words}"


class Either(Spec):
    """A value that one of several specs accepts (a count or the word auto)."""

    def __init__(self, *specs: Spec) -> None:
        self.specs = specs

    def accepts(self, value: Any) -> bool:
        return any(s.accepts(value) for s in self.specs)

    def __str__(self) -> str:
        return " or ".join(str(s) for s in self.specs)


def param(default: Any, valid: Spec) -> Any:
    """A dataclass field with its default (a list is copied per instance) and its valid values."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"valid": valid})
    return field(default=default, metadata={"valid": valid})


COUNT = Range(ge=1)  # epochs, batch sizes, trees, pixels, threads: at least one
SEED = Range(ge=0)
SHARE = Range(ge=0, le=1)  # a probability or fraction, ends included
WINDOW = Range(ge=32, multiple_of=32)  # encoders downsample by 32
ROLES = ("train", "val", "test", "infer")
DEVICE = Pattern(r"auto|cpu|cuda(?::(\d+))?", "auto | cpu | cuda | cuda:N")  # auto: CUDA when torch sees it
BATCH = Either(Range(ge=1), Choice("auto"))  # auto: the largest batch that fits on a GPU, 1 on the CPU
PRECISION = Choice("32", "bf16")  # bf16: autocast to bfloat16 (docs/gpu.md)


@dataclass
class SourceParams:
    """Where images come from: the embedded synthetic world, or real services."""

    # where images come from: synthetic (embedded world) | gee (Earth Engine) | local (your files) | stac (a STAC API)
    kind: str = param("synthetic", Choice("synthetic", "gee", "local", "stac"))
    images_dir: str = ""  # local: a folder of {obs_id}.tif (named bands) or {obs_id}.SAFE products
    rivers_file: str = ""  # a vector file of rivers (any CRS, e.g. drawn in QGIS) for real sources
    rivers_layer: str = ""  # its layer (a GeoPackage of several); empty: the file's only layer


@dataclass
class GeeParams:
    """Earth Engine export (source.kind: gee). Credentials come from the environment only."""

    project: str = ""  # Cloud project registered for Earth Engine
    product: str = param("L2A", Choice("L2A", "L1C"))  # L1C: 13 bands with B10
    window_days: int = param(30, COUNT)  # composite window centred on the observation's date
    cs_threshold: float = param(0.6, SHARE)  # Cloud Score+ cs_cdf at or above which a pixel counts as clear
    # batch (tasks to a bucket) | direct (computePixels, small sites)
    mode: str = param("batch", Choice("batch", "direct"))
    bucket: str = ""  # Cloud Storage bucket that batch exports write to (mode: batch)
    prefix: str = "sandmine/exports"  # folder inside the bucket for this project's exports
    max_retries: int = param(3, Range(ge=0))  # retries of a task that failed because Earth Engine was busy
    poll_s: float = param(30.0, Range(gt=0))  # first polling interval; grows 1.5x up to 10 min
    cache_dir: str = "~/.cache/sandmine/gee"  # finished exports, by what determines their pixels
    rivers_asset: str = ""  # e.g. WWF/HydroSHEDS/v1/FreeFlowingRivers; empty: source.rivers_file


EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"  # Element 84's STAC API on AWS: no account
HTTP_URL = Pattern(r"https?://\S+", "an http(s) URL")
SCL_MASKED = [0, 1, 3, 8, 9, 10, 11]  # SCL: 0 no data, 1 saturated, 3 cloud shadow, 8/9 cloud, 10 cirrus, 11 snow


@dataclass
class StacParams:
    """A STAC API of Sentinel-2 L2A and Sentinel-1 COGs (source.kind: stac); no account (docs/stac.md)."""

    url: str = param(EARTH_SEARCH, HTTP_URL)  # the STAC API's root; its /search is searched
    collections: list[str] = param(["sentinel-2-l2a", "sentinel-1-grd"], Items())  # S2 L2A (SCL), S1 (VV, VH)
    max_cloud: float = param(60.0, Range(ge=0, le=100))  # Sentinel-2 items with eo:cloud_cover above this % are skipped
    window_days: int = param(30, COUNT)  # median composite over this many days centred on the observation's date
    mask_classes: list[int] = param(SCL_MASKED, Items())  # SCL classes masked per pixel (see SCL_MASKED)
    max_items: int = param(200, COUNT)  # items read from one search at most (all collections together)
    retries: int = param(5, Range(ge=0, le=20))  # retries of a busy HTTP answer (429, 5xx): searches and COG reads
    backoff_s: float = param(1.0, Range(ge=0, le=60))  # back-off: search retry k waits backoff_s x 2^k, GDAL backoff_s
    timeout_s: float = param(60.0, Range(gt=0))  # per HTTP request
    chunk_px: int = param(1024, Range(ge=64))  # Dask chunk side on the site's grid (one task reads one chunk)
    threads: int = param(4, COUNT)  # chunks read at once
    cache_dir: str = "~/.cache/sandmine/stac"  # finished images, by what determines their pixels


@dataclass
class WorldParams:
    """Knobs of the embedded synthetic world (ignored by real sources)."""

    seed: int = param(7, SEED)  # seed of the whole synthetic world (layout, scenes, annotators)
    mine_density: float = param(1.0, Range(ge=0))  # scales the number of mining areas per km of river
    cloud_probability: float = param(0.3, SHARE)  # chance that an observation has clouds
    haze_probability: float = param(0.5, SHARE)  # chance of thin haze
    annotator_miss_ha: float = param(0.4, Range(ge=0))  # mines smaller than this are often missed by annotators
    previews: int = param(4, Range(ge=0))  # labelled observations drawn to plots/world/ for a look at the world


@dataclass
class LabelsParams:
    """How annotations are pulled and turned into masks."""

    # synthetic (the world's annotators) | labelbox (project export) | geojson (labels.folder)
    source: str = param("synthetic", Choice("synthetic", "labelbox", "geojson"))
    project_id: str = ""  # Labelbox project id (labels.source: labelbox; LABELBOX_API_KEY from the environment)
    folder: str = ""  # geojson: a folder of {obs_id}.geojson files, any CRS
    mine_classes: list[str] = param(["mine"], Items())  # class names that count as mine (case-insensitive)
    ignore_classes: list[str] = field(default_factory=lambda: ["ignore"])  # any class names, or none
    # false: a pixel is labelled when its centre lies in the polygon (unbiased area);
    # true: every pixel the polygon touches (the prior system's reference masks; grows mines ~1/2 px)
    all_touched: bool = False


@dataclass
class AoiParams:
    """The area of interest: a buffer around the river."""

    # vector (source's rivers file) | water_index (derived from image)
    rivers: str = param("vector", Choice("vector", "water_index"))
    # half-width of the river buffer in metres: pixels farther from the river are outside the AOI
    buffer_m: float = param(1000.0, Range(gt=0))
    # river lines simplified by this many metres before buffering (the prior system's 250 m)
    simplify_m: float = param(250.0, Range(ge=0))


@dataclass
class SplitParams:
    """Geographic split: sites clustered by location, whole clusters per role."""

    # geographic clusters of sites (k-means on site centres); whole clusters go to one role
    n_clusters: int = param(5, Range(ge=2))
    val_clusters: int = param(1, COUNT)  # early stopping and the operating threshold need validation
    test_clusters: int = param(1, Range(ge=0))  # clusters held out for the evaluate stage's scores
    # rotates which clusters are val and test (0, 1, … up to n_clusters - 1): k-fold runs
    fold: int = param(0, Range(ge=0))
    seed: int = param(0, SEED)  # seed of the clustering


@dataclass
class BaselineParams:
    """The classical baselines (model.encoder: random_forest | superpixel_gbm, decoder: none)."""

    pixels: int = param(200000, COUNT)  # training pixels sampled for the random forest
    trees: int = param(60, COUNT)  # random forest: number of trees
    depth: int = param(12, COUNT)  # random forest: maximum tree depth
    superpixel_px: int = param(12, COUNT)  # mean superpixel side (SLIC grid step)
    compactness: float = param(0.3, Range(gt=0))  # superpixels: SLIC compactness (higher: squarer superpixels)
    boost_trees: int = param(200, COUNT)  # superpixel classifier: gradient-boosting rounds
    boost_depth: int = param(3, COUNT)  # superpixel classifier: depth of each tree
    boost_lr: float = param(0.1, Range(gt=0))  # superpixel classifier: learning rate


@dataclass
class ModelParams:
    """Encoder, decoder and the input channels of the segmentation model."""

    encoder: str = "resnet18"  # names from the model registry, checked by models.check when training starts
    decoder: str = "unet"  # unet | fpn | deeplabv3plus | upernet | segformer | progressive | linear | none (baselines)
    # input channels taken from the export, by name (a subset of `bands`)
    bands: list[str] = param([*S2_L2A, "VV", "VH"], Items(*CATALOGUE))
    indices: list[str] = param([], Items(*INDICES, empty_ok=True))  # appended as channels
    weights: str | None = None  # null | ssl (the pretrain stage's encoder) | a local checkpoint file
    # what learns: full (the whole model) | frozen (only the decoder; linear probing with decoder linear) |
    # lora (the decoder and peft's low-rank adapters on the encoder: a ViT's attention qkv, a CNN's convolutions;
    # merged into the encoder's weights for the checkpoint)
    finetune: str = param("full", Choice("full", "frozen", "lora"))
    lora_rank: int = param(8, COUNT)  # rank r of each adapter (lora only)
    lora_alpha: int = param(16, COUNT)  # adapters are scaled by lora_alpha / lora_rank (lora only)
    lora_dropout: float = param(0.0, Range(ge=0, lt=1))  # dropout on the adapters' input (lora only)
    baseline: BaselineParams = field(default_factory=BaselineParams)


@dataclass
class ConfidenceParams:
    """Loss weight of a mine polygon's pixels by its annotation confidence (other pixels weigh 1)."""

    high: float = param(1.0, Range(gt=0, le=1))  # weight of pixels in polygons marked high confidence
    medium: float = param(0.75, Range(gt=0, le=1))  # weight of pixels in polygons marked medium confidence
    low: float = param(0.5, Range(gt=0, le=1))  # weight of pixels in polygons marked low confidence


@dataclass
class TrainParams:
    """The fit loop."""

    window_px: int = param(128, WINDOW)  # side of a training window in pixels (a multiple of 32)
    batch_size: int = param(16, COUNT)  # windows per training batch
    epochs: int = param(10, COUNT)  # most epochs (early stopping may end sooner)
    windows_per_epoch: int = param(384, COUNT)  # training windows drawn per epoch, centred on AOI pixels
    val_windows: int = param(192, COUNT)  # fixed validation windows scored each epoch (early stopping)
    # AdamW learning rate of the decoder (and of the encoder, times encoder_lr_scale)
    lr: float = param(1e-3, Range(gt=0))
    # encoder learning rate = lr x this (e.g. 0.1 when fine-tuning weights; 0: the encoder does not learn)
    encoder_lr_scale: float = param(1.0, Range(ge=0))
    weight_decay: float = param(1e-4, Range(ge=0))  # AdamW weight decay
    # wbce (BCE with the mine weight from label counts) | dice | focal
    loss: str = param("wbce", Choice("wbce", "dice", "focal"))
    confidence: ConfidenceParams = field(default_factory=ConfidenceParams)
    patience: int = param(4, COUNT)  # epochs without improvement before stopping
    seed: int = param(0, SEED)  # seed of windows, augmentations and initial weights
    device: str = param("auto", DEVICE)  # also runs pretrain; checked when the stage starts
    # "32" (float32) | bf16 (bfloat16 autocast; loss and probabilities stay float32)
    precision: str = param("32", PRECISION)
    threads: int = param(2, COUNT)  # torch threads of the train stage
    # DataLoader processes reading training windows from the COGs (0: in the stage's own process);
    # the windows drawn are the same for any number
    workers: int = param(0, Range(ge=0))
    # decoded image tiles kept per reading process (MB): memory stays bounded whatever the data's size
    cache_mb: int = param(256, Range(ge=0))
    resume: bool = True  # after an interruption, go on from the last finished epoch (same result)


@dataclass
class SslParams:
    """Self-supervised pretraining of model.encoder on unlabelled AOI windows (stage pretrain)."""

    # none (no pretraining: the stage writes a marker) | moco (MoCo v2 on unlabelled AOI windows)
    method: str = param("none", Choice("none", "moco"))
    epochs: int = param(8, COUNT)  # pretraining epochs
    windows_per_epoch: int = param(512, COUNT)  # windows drawn per pretraining epoch
    window_px: int = param(64, WINDOW)  # side of a pretraining window in pixels
    batch_size: int = param(32, COUNT)  # windows per pretraining batch
    lr: float = param(0.01, Range(gt=0))  # SGD learning rate of the query encoder
    temperature: float = param(0.2, Range(gt=0))  # InfoNCE softmax temperature
    queue: int = param(2048, COUNT)  # negative keys kept in the MoCo queue
    momentum: float = param(0.99, Range(ge=0, lt=1))  # momentum of the key encoder's moving average
    seed: int = param(0, SEED)  # seed of windows, augmentations and initial weights


@dataclass
class PredictParams:
    """Stitched sliding-window prediction (window_px - 2 * discard_px >= stride_px: see check_grid)."""

    window_px: int = param(512, WINDOW)  # side of a prediction window in pixels (a multiple of 32)
    stride_px: int = param(480, COUNT)  # step between prediction windows in pixels
    discard_px: int = param(16, Range(ge=0))  # pixels dropped at each window edge (kept at raster edges)
    # windows per forward pass; auto: the largest batch that fits on a GPU (1 on the CPU)
    batch_size: int | str = param("auto", BATCH)
    # null: the checkpoint's operating threshold for `operating_point` (chosen on the val split)
    threshold: float | None = param(None, Range(gt=0, lt=1))
    # best_f1 (highest val pixel F1 in the AOI) | area (val predicted mined area = labelled area)
    operating_point: str = param("best_f1", Choice("best_f1", "area"))
    # how overlapping windows are combined: gaussian (trust window centres) | mean
    blend: str = param("gaussian", Choice("mean", "gaussian"))
    device: str = param("auto", DEVICE)  # evaluate, infer (every Dask worker) and `sandmine predict`
    precision: str = param("32", PRECISION)  # also the train stage's predictions of val (the threshold)
    workers: int = param(1, Range(ge=0))  # Dask worker processes (0: no Dask)
    scheduler: str | None = None  # address of a running Dask scheduler (tcp://host:8786); null: a local cluster
    tile_rows: int = param(4096, COUNT)  # rows of a large raster per Dask task
    threads: int = param(2, COUNT)  # torch threads per prediction task


@dataclass
class EvaluateParams:
    """Scores on held-out observations."""

    roles: list[str] = param(["test"], Items(*ROLES))  # split roles scored by the evaluate stage
    # share of a mine that must be covered for it to count as found (and vice versa)
    object_overlap: float = param(0.3, Range(gt=0, le=1))


@dataclass
class InferParams:
    """Monitoring outputs for observations with role `infer`."""

    # minimum mapping unit: mines smaller than this (hectares) are dropped from masks and polygons
    min_area_ha: float = param(0.2, Range(ge=0))


@dataclass
class SurveyParams:
    """A river-scale survey (stage survey): every river of a file within aoi.buffer_m, per period."""

    rivers: str = "data/surveys/river.geojson"  # vector file of rivers (any CRS); synthetic: catalogue --size river
    river_field: str = "river"  # the property that names each river (features of one name are one river)
    # the layer of a file of several (a GeoPackage); empty: the file's only layer (several: an error listing them)
    rivers_layer: str = ""
    region: str = ""  # optional polygon file (any CRS): only the rivers' parts inside it
    # START/END (both included), in date order, not overlapping: change is reported between consecutive ones
    periods: list[str] = param(["2025-10-01/2025-12-31", "2026-04-01/2026-06-30"], Items())
    # side of the UTM-aligned chunks (one task each); 4.8 km + 2 x 16 px halo = one 512 px window of the model
    chunk_km: float = param(4.8, Range(ge=1, le=100))
    # margin exported and predicted around each chunk, then cut off: the model sees across the seam
    halo_px: int = param(16, Range(ge=0, le=256))
    cache_dir: str = ".survey_cache"  # chunk images and predictions, by what determines them: reruns add only new ones
    # vector file (any CRS) of protected reaches / no-mining zones: new and expanded mines in or near one are
    # alerts (layer `alerts` of survey.gpkg, alerts.csv, the map); empty: no alerts. params.yaml names the
    # synthetic world's reaches, data/surveys/zones.geojson (written by catalogue --size river)
    zones: str = ""
    zone_field: str = "name"  # the property naming each zone (features of one name are one zone)
    zones_layer: str = ""  # the layer of a zones file of several (a GeoPackage); empty: the file's only layer
    # a mine polygon within this many metres of a zone counts as in it (lines and points need a margin above 0)
    zone_margin_m: float = param(100.0, Range(ge=0, le=100_000))
    # an "expanded" alert: a polygon overlapping the previous period's mines grew by at least this many ha
    alert_growth_ha: float = param(1.0, Range(gt=0))


@dataclass
class Params:
    """All of params.yaml."""

    source: SourceParams = field(default_factory=SourceParams)
    # bands the export writes (names from core/bands.py; reflectance 0-1, SAR in dB, CLOUD 0-1)
    bands: list[str] = param(EXPORT_DEFAULT, Items(*CATALOGUE))
    world: WorldParams = field(default_factory=WorldParams)
    gee: GeeParams = field(default_factory=GeeParams)
    stac: StacParams = field(default_factory=StacParams)
    labels: LabelsParams = field(default_factory=LabelsParams)
    aoi: AoiParams = field(default_factory=AoiParams)
    split: SplitParams = field(default_factory=SplitParams)
    model: ModelParams = field(default_factory=ModelParams)
    ssl: SslParams = field(default_factory=SslParams)
    train: TrainParams = field(default_factory=TrainParams)
    predict: PredictParams = field(default_factory=PredictParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    infer: InferParams = field(default_factory=InferParams)
    survey: SurveyParams = field(default_factory=SurveyParams)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _show(value: Any) -> str:
    """A value as params.yaml spells it (null, true, false) or, for the rest, as Python does."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    return repr(value)


@dataclass(frozen=True)
class Knob:
    """One leaf field of params.yaml: its dotted key, value type, default and valid values."""

    key: str
    kind: Any  # int | float | str | bool | list
    nullable: bool
    default: Any
    valid: Spec | None

    def problem(self, value: Any) -> str | None:
        """Why `value` does not fit ("must be ≥ 1, got 0"), or None when it does."""
        if value is None and self.nullable:
            return None
        if self.kind is bool and not isinstance(value, bool):
            return f"must be true or false, got {_show(value)}"
        if self.valid is None or self.valid.accepts(value):
            return None
        return f"must be {self.valid}, got {_show(value)}{self.valid.detail(value)}"

    def check(self, value: Any, where: str) -> None:
        """Raise SandmineError naming this key, `value` and the valid values when `value` does not fit."""
        problem = self.problem(value)
        if problem:
            raise SandmineError(
                f"'{self.key}' {problem}", where, f"change it, e.g. to its default {self.shown_default}"
            )

    @property
    def shown_default(self) -> str:
        """The default as params.yaml spells it."""
        return _show(self.default)

    def parse(self, text: str) -> Any:
        """The value of a command-line option for this field; ValueError says why it does not fit."""
        try:
            value = self.kind(text) if self.kind in (int, float) else text
        except ValueError:
            if self.valid is not None and self.valid.accepts(text):  # a word a number field also takes (auto)
                return text
            kind = self.valid if isinstance(self.valid, Either) else "an integer" if self.kind is int else "a number"
            raise ValueError(f"must be {kind}, got {text!r}") from None
        problem = self.problem(value)
        if problem:
            raise ValueError(problem)
        return value


def _section_class(dotted: str) -> tuple[type, str]:
    """The dataclass that holds key `dotted` (a.b.c) and the dotted path of that section.

    Sections are found from the fields' types, so any depth works (`train.confidence.high`).
    """
    cls: Any = Params
    parents: list[str] = []
    for part in dotted.split(".")[:-1]:
        sub = _hints(cls).get(part)
        if sub is None or not is_dataclass(sub):
            break
        cls = sub
        parents.append(part)
    return cls, ".".join(parents)


def _knob(cls: type, name: str, key: str) -> Knob:
    f = {f.name: f for f in fields(cls)}[name]
    hint = _hints(cls)[name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else ()
    kind = next(a for a in args if a is not type(None)) if args else typing.get_origin(hint) or hint
    default = f.default_factory() if callable(f.default_factory) else f.default
    return Knob(key, kind, type(None) in args, default, f.metadata.get("valid"))


def knob(key: str) -> Knob:
    """The leaf field at dotted `key` (e.g. `predict.stride_px`); KeyError when there is none."""
    cls, parent = _section_class(key)
    name = key.rsplit(".", 1)[-1]
    if parent != key.rpartition(".")[0] or name not in {f.name for f in fields(cls)}:
        raise KeyError(key)
    return _knob(cls, name, key)


def knobs(cls: type = Params, prefix: str = "") -> Iterator[Knob]:
    """Every leaf field of the schema, depth first."""
    for f in fields(cls):
        sub = _hints(cls)[f.name]
        if is_dataclass(sub):
            yield from knobs(sub, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            yield _knob(cls, f.name, f"{prefix}{f.name}")


def check_fields(p: Params, where: str) -> None:
    """Check every field of `p` against the valid values declared beside it.

    Raises:
        SandmineError: the first field out of range, naming its key, its value and the valid values.
    """
    for k in knobs():
        value: Any = p
        for part in k.key.split("."):
            value = getattr(value, part)
        k.check(value, where)


def check_grid(
    window_px: int,
    stride_px: int,
    discard_px: int,
    where: str,
    names: tuple[str, str, str] = ("predict.window_px", "predict.stride_px", "predict.discard_px"),
) -> None:
    """Refuse a prediction grid with gaps: the kept centre of each window must cover its stride.

    Args:
        names: how the caller calls window, stride and discard (params keys or command-line options).
    """
    if window_px - 2 * discard_px < stride_px:
        window, stride, discard = names
        kept = window_px - 2 * discard_px
        raise SandmineError(
            f"prediction windows leave gaps: window - 2 * discard = {kept} < stride = {stride_px}",
            where,
            f"lower {stride} or {discard}, or raise {window}",
        )


def _valid_keys(cls: type, prefix: str) -> str:
    names = [f.name for f in fields(cls)]
    return f"valid keys under '{prefix}': {', '.join(names)}" if prefix else ", ".join(names)


# keys that params.yaml files of earlier versions have -> how to say it now
RENAMED = {"model.freeze_encoder": "write model.finetune: frozen for freeze_encoder: true (full for false)"}


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate params.yaml; unknown keys, wrong types and values out of range name the key.

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
    _refuse_resolvers(OmegaConf.to_container(user, resolve=False), str(path))
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Params), user)
    except ConfigKeyError as exc:
        key = str(exc.full_key)
        cls, parent = _section_class(key)
        fix = RENAMED.get(key, f"check the spelling; {_valid_keys(cls, parent)}")
        raise SandmineError(f"unknown key '{key}'", str(path), fix) from exc
    except ValidationError as exc:
        raise SandmineError(
            f"wrong type for '{exc.full_key}': {str(exc.msg).splitlines()[0]}",
            str(path),
            "give a value of the type shown in src/sandmine/core/config.py",
        ) from exc
    except OmegaConfBaseException as exc:
        raise SandmineError(f"invalid params ({exc})", str(path)) from exc
    for k in knobs():  # OmegaConf turns 5 or "yes" into true: only true/false are taken as written
        if k.kind is bool:
            k.check(OmegaConf.select(user, k.key, default=False), str(path))
    params: Params = OmegaConf.to_object(merged)  # type: ignore[assignment]
    check_fields(params, str(path))
    _check_values(params, path)
    return params


# `${name:...}` in a value: an OmegaConf resolver call (oc.env, oc.decode, or any registered one)
_RESOLVER = re.compile(r"\$\{\s*([A-Za-z_][\w.\-]*)\s*:")


def _refuse_resolvers(node: Any, where: str, key: str = "") -> None:
    """Refuse resolver interpolations (`${oc.env:VAR}` and the like) anywhere in params.yaml.

    A resolver can read the environment, so a secret would be resolved into a value and from there
    into logs and error messages; params hold literal values (plain `${other.key}` references stay
    allowed: they only read params). Credentials come from the environment or .dvc/config.local.
    """
    if isinstance(node, dict):
        for k, v in node.items():
            _refuse_resolvers(v, where, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _refuse_resolvers(v, where, f"{key}[{i}]")
    elif isinstance(node, str):
        names = _RESOLVER.findall(node)
        if names:
            raise SandmineError(
                f"'{key}' calls the resolver(s) {sorted(set(names))} (`${{{names[0]}:...}}`); params.yaml takes "
                "literal values, and a resolver such as oc.env would copy environment variables (secrets) into "
                "params, logs and error messages",
                where,
                f"write the value of '{key}' literally; credentials are never params: sandmine reads them from the "
                "environment (LABELBOX_API_KEY, SANDMINE_EE_SERVICE_ACCOUNT_KEY or GOOGLE_APPLICATION_CREDENTIALS) "
                "and DVC from .dvc/config.local",
            )


def _check_values(p: Params, path: Path) -> None:
    """Rules that tie several fields together (each field's own range is declared beside it)."""
    where = str(path)
    check_grid(p.predict.window_px, p.predict.stride_px, p.predict.discard_px, where)
    if p.split.val_clusters + p.split.test_clusters >= p.split.n_clusters:
        raise SandmineError(
            "no cluster left for training: val_clusters + test_clusters >= n_clusters",
            where,
            "raise 'split.n_clusters' or hold out fewer clusters",
        )
