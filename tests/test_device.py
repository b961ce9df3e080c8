"""The device switch: `auto` without and with CUDA, clear errors, `cuda:N`, and identity on the CPU."""

import numpy as np
import pytest
import torch

from sandmine import device as dev
from sandmine.core.errors import SandmineError


@pytest.fixture
def cuda(monkeypatch):
    """Pretend torch sees `n` CUDA devices; record the determinism switches instead of flipping them."""
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode, warn_only=False: calls.append(warn_only))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")

    def see(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        return calls

    return see


def test_resolve_device_auto_is_cpu_without_cuda(cuda):
    calls = cuda(0)
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device("cpu") == torch.device("cpu")
    assert not calls  # nothing CUDA-specific is switched on for the CPU


def test_resolve_device_auto_is_the_gpu_with_cuda_and_makes_it_deterministic(cuda):
    import os

    calls = cuda(1)
    assert dev.resolve_device("auto") == torch.device("cuda", 0)
    assert calls == [True]  # use_deterministic_algorithms(True, warn_only=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.benchmark is False


def test_resolve_device_cuda_without_cuda_names_the_param_and_what_torch_sees(cuda):
    cuda(0)
    with pytest.raises(SandmineError) as exc:
        dev.resolve_device("cuda", "params.yaml: train.device")
    text = str(exc.value)
    assert "params.yaml: train.device" in text and "device 'cuda' asked" in text
    assert f"torch {torch.__version__} sees no CUDA device" in text and "auto or cpu" in text


@pytest.mark.parametrize(("spec", "index"), [("cuda", 0), ("cuda:0", 0), ("cuda:1", 1)])
def test_resolve_device_parses_cuda_index(cuda, spec, index):
    cuda(2)
    assert dev.resolve_device(spec) == torch.device("cuda", index)


def test_resolve_device_index_beyond_the_gpus_lists_them(cuda):
    cuda(2)
    with pytest.raises(SandmineError, match=r"sees 2 CUDA device\(s\): cuda:0 … cuda:1"):
        dev.resolve_device("cuda:2", "sandmine predict --device")


@pytest.mark.parametrize("spec", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cpu:0", ""])
def test_resolve_device_unknown_name_lists_valid_ones(spec):
    with pytest.raises(SandmineError, match=r"unknown device (.|\n)*auto \| cpu \| cuda \| cuda:N"):
        dev.resolve_device(spec)


def test_cpu_helpers_are_the_identity():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    t = dev.to_device(x, torch.device("cpu"))
    assert t.data_ptr() == x.ctypes.data and t.dtype == torch.float32  # the array itself, no copy
    model = torch.nn.Conv2d(2, 1, 1)
    before = model.weight
    assert dev.place(model, torch.device("cpu")) is model and model.weight is before
    assert dev.device_of(model) == torch.device("cpu") and dev.device_of(torch.nn.ReLU()) == torch.device("cpu")
    with dev.autocast(torch.device("cpu"), "32"):
        assert model(t).dtype == torch.float32


def test_bf16_autocasts_when_asked_on_the_cpu():
    model = torch.nn.Conv2d(2, 1, 1)
    with dev.autocast(torch.device("cpu"), "bf16"):
        assert model(torch.ones(1, 2, 4, 4)).dtype == torch.bfloat16
