"""The CPU pin: one model on two instruction sets with it, two models without it; workers and tests get it too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sandmine.core import determinism
from sandmine.core.errors import SandmineError

ROOT = Path(__file__).parents[1]
AVX512 = "avx512f" in determinism._cpu_flags()
needs_avx512 = pytest.mark.skipif(
    not AVX512, reason="simulating a second machine needs a CPU above the pinned level (AVX-512)"
)

# A fresh process: `import sandmine` first (the pin, as in every stage), then a few AdamW steps of a small
# conv net (oneDNN and MKL convolutions, ATen's vectorised ops) and numpy's exp/log/power and BLAS; prints
# the instruction sets that were used, a hash of the weights and one of numpy's results.
TRAIN = """
import hashlib, json, sandmine
import numpy as np, torch
from torch import nn
from sandmine.core import determinism
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8),
                    nn.ReLU(), nn.Conv2d(8, 1, 1))
opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
x, y = torch.randn(4, 4, 32, 32), (torch.rand(4, 1, 32, 32) > 0.7).float()
for _ in range(3):
    opt.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
    opt.step()
w = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in net.state_dict().values())).hexdigest()
a = np.random.default_rng(0).random((64, 64)) * 10 + 0.01
n = hashlib.sha256(np.exp(a).tobytes() + np.log(a).tobytes() + np.power(a, 1.7).tobytes() + (a @ a).tobytes())
print(json.dumps({"aten": torch.backends.cpu.get_cpu_capability(), "numpy": determinism._numpy_simd(),
                  "weights": w, "numpy_results": n.hexdigest()}))
"""

# what an AVX2 machine would show each library, set before Python starts (before the pin could act)
AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL's own cap, as on an AVX2 CPU (the pin uses MKL_CBWR)
    "NPY_DISABLE_CPU_FEATURES": determinism._numpy_disabled(),
}


def _train(pin: str, *machines: dict[str, str]) -> list[dict[str, str]]:
    """TRAIN in one fresh process per machine, at once, each with SANDMINE_CPU_PIN=`pin`."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN],
            env={**determinism.unpinned_environ(), **machine, determinism.SWITCH: pin},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for machine in machines
    ]
    out = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@needs_avx512
def test_pin_gives_the_same_weights_on_avx512_and_avx2():
    here, there = _train("avx2", {}, AVX2_MACHINE)
    assert here["aten"] == there["aten"] == "AVX2"
    assert "X86_V4" not in here["numpy"]
    assert here["weights"] == there["weights"] and here["numpy_results"] == there["numpy_results"]


@needs_avx512
def test_without_the_pin_avx512_and_avx2_give_different_weights():
    here, there = _train("off", {}, AVX2_MACHINE)
    assert (here["aten"], there["aten"]) == ("AVX512", "AVX2")
    # so the test above means something: torch's kernels and numpy's each give other bits on AVX-512
    assert here["weights"] != there["weights"] and here["numpy_results"] != there["numpy_results"]


def test_tests_run_pinned():
    # conftest imports sandmine before numpy and torch load: this process runs the pinned kernels
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and os.environ["MKL_CBWR"] == "COMPATIBLE"
    if AVX512:
        assert torch.backends.cpu.get_cpu_capability() == "AVX2"
        assert "X86_V4" not in determinism._numpy_simd()


def test_pin_only_lowers_a_cap_and_keeps_openblas_settings(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # an older CPU's cap, or one set by hand
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # above the pin: lowered
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")  # set by the workplace for correctness: kept
    monkeypatch.delenv("MKL_CBWR", raising=False)
    assert determinism.pin() == "avx2"
    assert os.environ["ATEN_CPU_CAPABILITY"] == "default" and os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert os.environ["OPENBLAS_CORETYPE"] == "Prescott" and os.environ["MKL_CBWR"] == "COMPATIBLE"


def test_pin_refuses_an_unknown_level(monkeypatch):
    monkeypatch.setenv(determinism.SWITCH, "avx9")
    with pytest.raises(SandmineError, match="SANDMINE_CPU_PIN"):
        determinism.pin()
    res = subprocess.run([sys.executable, "-c", "import sandmine"], env={**os.environ}, capture_output=True, text=True)
    assert res.returncode == 1 and "How to fix" in res.stderr and "Traceback" not in res.stderr


class _Capability(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> str:
        return f"{torch.backends.cpu.get_cpu_capability()} {determinism._numpy_simd()}"


def test_pin_reaches_dataloader_and_dask_workers():
    from sandmine.scale import dask_client

    loader = torch.utils.data.DataLoader(_Capability(), batch_size=1, num_workers=1)
    assert next(iter(loader)) == [f"{torch.backends.cpu.get_cpu_capability()} {determinism._numpy_simd()}"]
    with dask_client(1) as client:
        env = client.submit(determinism.fingerprint, {}, pure=False).result()
    assert env["cpu_pin"] == "avx2" and env["onednn_max_isa"] == "AVX2" and env["mkl_cbwr"] == "COMPATIBLE"
    if AVX512:
        assert env["aten_capability"] == "AVX2" and "X86_V4" not in env["numpy_simd"]


def test_differences_ignore_the_cpu_model_only_while_pinned():
    a = {"cpu_pin": "avx2", "torch": "2.14.1", "cpu_model": "Xeon", "aten_capability": "AVX2"}
    assert determinism.differences(a, {**a, "cpu_model": "EPYC"}) == []
    assert determinism.differences(a, {**a, "torch": "2.15.0"}) == [("torch", "2.14.1", "2.15.0")]
    off = {**a, "cpu_pin": "off", "cpu_model": "EPYC", "aten_capability": "AVX512"}
    assert [k for k, _, _ in determinism.differences(a, off)] == ["aten_capability", "cpu_model", "cpu_pin"]
