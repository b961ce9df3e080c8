"""params.yaml schema: defaults, unknown keys, wrong types, bad choices."""

from pathlib import Path

import pytest

from sandmine.config import load_params
from sandmine.errors import SandmineError


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
