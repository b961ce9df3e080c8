"""Stage env writes the fingerprint; stages refuse to run under another; GPU numbers never replace CPU ones unasked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandmine.core import determinism
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.steps import env

ROOT = Path(__file__).parents[1]


def _params() -> Params:
    p = Params()
    p.train.device = p.predict.device = "cpu"
    return p


def test_run_writes_a_flat_fingerprint_that_check_accepts(tmp_path):
    out = tmp_path / "metrics" / "env.json"
    env.run(_params(), out)
    fp = json.loads(out.read_text())
    assert all(isinstance(v, (str, int)) for v in fp.values())  # dvc metrics: flat numbers or strings
    assert fp["cpu_pin"] == "avx2" and fp["train_device"] == fp["predict_device"] == "cpu"
    for key in ("torch", "numpy", "gdal", "rasterio", "aten_capability", "blas", "cpu_model", "train_precision"):
        assert fp[key], key
    determinism.check(_params(), out)  # this process: the same fingerprint
    import scipy.linalg  # noqa: F401  a second OpenBLAS (scipy's) loaded later changes nothing

    determinism.check(_params(), out)


def test_check_refuses_another_fingerprint_and_says_how_to_fix(tmp_path):
    out = tmp_path / "env.json"
    env.run(_params(), out)
    fp = json.loads(out.read_text())
    out.write_text(json.dumps({**fp, "torch": "1.0.0", "cpu_model": "another CPU"}))
    with pytest.raises(SandmineError, match=r"torch: 1.0.0 there") as err:
        determinism.check(_params(), out)
    assert "cpu_model" not in str(err.value)  # pinned on both sides: the CPU model decides no bit
    assert "dvc repro --force env" in str(err.value)
    p = _params()
    p.train.threads = 3
    out.write_text(json.dumps(fp))
    with pytest.raises(SandmineError, match="train_threads: 2 there, 3 here"):
        determinism.check(p, out)
    with pytest.raises(SandmineError, match="dvc repro env"):
        determinism.check(p, tmp_path / "missing.json")


def test_run_refuses_to_replace_cpu_results_by_gpu_ones_unasked(tmp_path, monkeypatch):
    out = tmp_path / "env.json"
    env.run(_params(), out)
    fp = json.loads(out.read_text())
    cuda = {**fp, "train_device": "cuda", "train_device_name": "NVIDIA H200"}
    monkeypatch.setattr(determinism, "of_params", lambda p: cuda)  # what a GPU machine would record
    with pytest.raises(SandmineError, match="train: cpu there, cuda here") as err:
        env.run(_params(), out)
    assert "SANDMINE_DEVICE_CHANGE=1" in str(err.value)
    assert json.loads(out.read_text()) == fp  # left as it was
    monkeypatch.setenv(env.DEVICE_CHANGE, "1")
    env.run(_params(), out)
    assert json.loads(out.read_text())["train_device_name"] == "NVIDIA H200"


def test_a_stage_under_another_fingerprint_stops_before_it_computes(tmp_path):
    fp = tmp_path / "env.json"
    run = [sys.executable, str(ROOT / "stages" / "env.py"), "--params", str(tmp_path / "params.yaml"), "--out", str(fp)]
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace("device: auto", "device: cpu"))
    res = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    stage = [sys.executable, str(ROOT / "stages" / "split.py"), "--params", "params.yaml", "--env", str(fp)]
    stage += [f"--{k}={tmp_path / 'none'}" for k in ("sites", "observations", "labels", "out", "metrics", "plot")]
    off = {**os.environ, determinism.SWITCH: "off"}
    res = subprocess.run(stage, capture_output=True, text=True, cwd=tmp_path, env=off)
    assert res.returncode == 1 and "cpu_pin: avx2 there, off here" in res.stderr and "Traceback" not in res.stderr
