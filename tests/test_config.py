"""params.yaml schema: defaults, unknown keys, wrong types, bad choices."""

import re
from pathlib import Path

import pytest

from sandmine.core.config import load_params
from sandmine.core.errors import SandmineError


def test_load_params_repository_file_matches_schema():
    p = load_params(Path(__file__).parents[1] / "params.yaml")
    assert p.model.encoder and p.aoi.buffer_m == 1000.0


def test_load_params_unknown_key_names_key_and_valid_keys(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("model:\n  encodr: resnet18\n")
    with pytest.raises(SandmineError) as err:
        load_params(f)
    msg = str(err.value)
    assert "model.encodr" in msg and "encoder" in msg and str(f) in msg


def test_load_params_unknown_section(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("modle:\n  encoder: resnet18\n")
    with pytest.raises(SandmineError, match="unknown key 'modle"):
        load_params(f)


def test_load_params_renamed_key_says_what_it_is_now(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("model:\n  freeze_encoder: true\n")
    with pytest.raises(SandmineError, match="unknown key 'model.freeze_encoder'") as err:
        load_params(f)
    assert "model.finetune: frozen" in str(err.value)
    f.write_text("model:\n  finetune: lora\n  lora_rank: 0\n")
    with pytest.raises(SandmineError, match="'model.lora_rank' must be ≥ 1, got 0"):
        load_params(f)
    f.write_text("model:\n  finetune: adapters\n")
    with pytest.raises(SandmineError, match=re.escape("one of: full | frozen | lora, got 'adapters'")):
        load_params(f)


def test_load_params_wrong_type_names_key(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  epochs: many\n")
    with pytest.raises(SandmineError, match="train.epochs"):
        load_params(f)


def test_load_params_bad_choice_lists_valid(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  loss: hinge\n")
    with pytest.raises(SandmineError, match="wbce"):
        load_params(f)


def test_load_params_unknown_band(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("model:\n  bands: [B2, B13]\n")
    with pytest.raises(SandmineError, match="B13"):
        load_params(f)


def test_load_params_gappy_prediction_grid_refused(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("predict:\n  window_px: 128\n  stride_px: 128\n  discard_px: 16\n")
    with pytest.raises(SandmineError, match="gaps"):
        load_params(f)


def test_load_params_missing_file(tmp_path):
    with pytest.raises(SandmineError, match="not found"):
        load_params(tmp_path / "nope.yaml")


BAD_VALUES = [  # (params.yaml snippet, fragments of the message)
    ("predict:\n  batch_size: 0\n", ["'predict.batch_size' must be ≥ 1 or one of: auto, got 0", "its default 'auto'"]),
    ("predict:\n  discard_px: -4\n", ["'predict.discard_px' must be ≥ 0, got -4"]),
    ("predict:\n  threshold: 1.5\n", ["'predict.threshold' must be in (0, 1), got 1.5", "its default null"]),
    ("predict:\n  threshold: 0\n", ["'predict.threshold' must be in (0, 1), got 0.0"]),
    ("train:\n  lr: -0.001\n", ["'train.lr' must be > 0, got -0.001"]),
    ("train:\n  patience: 0\n", ["'train.patience' must be ≥ 1, got 0"]),
    ("predict:\n  operating_point: f1\n", ["'predict.operating_point' must be one of: best_f1 | area, got 'f1'"]),
    ("evaluate:\n  roles: [tset]\n", ["'evaluate.roles' must be a non-empty list of: train | val | test | infer"]),
    ("evaluate:\n  roles: []\n", ["'evaluate.roles' must be a non-empty list", "got []"]),
    ("labels:\n  mine_classes: []\n", ["'labels.mine_classes' must be a non-empty list, got []"]),
    ("labels:\n  all_touched: 5\n", ["'labels.all_touched' must be true or false, got 5"]),
    ("gee:\n  cs_threshold: 5\n", ["'gee.cs_threshold' must be in [0, 1], got 5.0"]),
    ("train:\n  window_px: 100\n", ["'train.window_px' must be a multiple of 32 and ≥ 32, got 100"]),
    ("train:\n  confidence:\n    low: 0\n", ["'train.confidence.low' must be in (0, 1], got 0.0"]),
    ("model:\n  indices: [NDXI]\n", ["'model.indices'", "NDXI"]),
    ("bands: []\n", ["'bands' must be a non-empty list of: B1"]),
    ("train:\n  device: gpu\n", ["'train.device' must be one of: auto | cpu | cuda | cuda:N, got 'gpu'", "'auto'"]),
    ("predict:\n  device: cuda:a\n", ["'predict.device' must be one of: auto | cpu | cuda | cuda:N, got 'cuda:a'"]),
    ("train:\n  precision: 16\n", ["'train.precision' must be one of: 32 | bf16, got '16'"]),
]


@pytest.mark.parametrize(("snippet", "fragments"), BAD_VALUES, ids=[f[0].split("'")[1] for _, f in BAD_VALUES])
def test_load_params_out_of_range_names_key_value_and_range(tmp_path, snippet, fragments):
    f = tmp_path / "params.yaml"
    f.write_text(snippet)
    with pytest.raises(SandmineError) as err:
        load_params(f)
    msg = str(err.value)
    for fragment in [str(f), "How to fix", *fragments]:
        assert fragment in msg


def test_load_params_threshold_null_or_a_probability(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("predict:\n  threshold: 0.35\n")
    assert load_params(f).predict.threshold == 0.35
    f.write_text("predict:\n  threshold: null\n")
    assert load_params(f).predict.threshold is None


def test_load_params_device_and_precision_are_checked_for_form_here_and_for_hardware_later(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  device: cuda:3\n  precision: 32\npredict:\n  device: cpu\n  precision: bf16\n")
    p = load_params(f)  # no GPU needed to load: the stage that uses the device checks that torch sees it
    assert (p.train.device, p.train.precision, p.predict.device, p.predict.precision) == ("cuda:3", "32", "cpu", "bf16")


def test_schema_every_numeric_and_choice_field_declares_its_valid_values():
    from dataclasses import fields, is_dataclass
    from typing import get_type_hints

    from sandmine.core import config

    free_text = {  # names, paths and addresses: any string
        "source.images_dir", "source.rivers_file", "gee.project", "gee.bucket", "gee.prefix", "gee.cache_dir",
        "gee.rivers_asset", "stac.cache_dir", "labels.project_id", "labels.folder", "labels.ignore_classes",
        "model.encoder", "model.decoder", "model.weights", "predict.scheduler", "survey.rivers", "survey.river_field",
        "survey.region", "survey.cache_dir", "source.rivers_layer", "survey.rivers_layer", "survey.zones",
        "survey.zone_field", "survey.zones_layer",
    }  # fmt: skip

    def walk(cls, prefix=""):
        hints = get_type_hints(cls)
        for f in fields(cls):
            if is_dataclass(hints[f.name]):
                yield from walk(hints[f.name], f"{prefix}{f.name}.")
            elif hints[f.name] is not bool:
                yield f"{prefix}{f.name}", f

    missing = [key for key, f in walk(config.Params) if key not in free_text and "valid" not in f.metadata]
    assert not missing


def test_schema_defaults_are_valid():
    from sandmine.core.config import Params, check_fields

    check_fields(Params(), "defaults")


@pytest.mark.parametrize(
    ("snippet", "key", "listed"),
    [
        ("train:\n  confidence:\n    hgh: 1.0\n", "train.confidence.hgh", "valid keys under 'train.confidence': high"),
        ("model:\n  baseline:\n    treez: 5\n", "model.baseline.treez", "valid keys under 'model.baseline': pixels"),
    ],
    ids=["train.confidence", "model.baseline"],
)
def test_load_params_nested_typo_lists_keys_of_its_own_section(tmp_path, snippet, key, listed):
    f = tmp_path / "params.yaml"
    f.write_text(snippet)
    with pytest.raises(SandmineError) as err:
        load_params(f)
    assert f"unknown key '{key}'" in str(err.value) and listed in str(err.value)


def test_check_grid_names_what_to_change():
    from sandmine.core.config import check_grid

    check_grid(512, 480, 16, "x")
    with pytest.raises(SandmineError, match=r"window - 2 \* discard = 96 < stride = 128") as err:
        check_grid(128, 128, 16, "cli", names=("--window", "--stride", "--discard"))
    assert "lower --stride or --discard, or raise --window" in str(err.value)
