"""Where models run: `auto | cpu | cuda | cuda:N` resolved to a torch device, and the CUDA-only extras.

On the CPU at `precision: 32` every helper here is the identity (same tensors, dtypes and ops), so
CPU results stay byte for byte what they were before devices existed. On CUDA: deterministic algorithms where
torch has them, a fixed cuBLAS workspace, channels-last memory, pinned host memory with
non-blocking copies, and bf16 autocast when `precision` is `bf16` (docs/gpu.md).
"""

from __future__ import annotations

import contextlib
import os
import re

import numpy as np
import torch
from torch import nn

from sandmine.core.config import DEVICE
from sandmine.core.errors import SandmineError


def resolve_device(spec: str, where: str = "device") -> torch.device:
    """The torch device that `spec` names; `auto` is CUDA (device 0) when torch sees one, else the CPU.

    For a CUDA device this also sets `CUBLAS_WORKSPACE_CONFIG=:4096:8` (unless set; cuBLAS reads
    it when it starts, so this runs before any CUDA work) and `torch.use_deterministic_algorithms
    (True, warn_only=True)`: operations without a deterministic CUDA kernel warn instead of failing.

    Args:
        spec: `auto`, `cpu`, `cuda` or `cuda:N`.
        where: what the user set (`params.yaml: train.device`, `sandmine predict --device`).

    Raises:
        SandmineError: `spec` is not a device name, or names a CUDA device that torch does not see.
    """
    m = re.fullmatch(DEVICE.regex, spec)
    if m is None:
        raise SandmineError(f"unknown device '{spec}'", where, f"use {DEVICE}")
    if spec == "cpu":
        return torch.device("cpu")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    available = torch.cuda.is_available()
    if spec == "auto":
        if not available:
            return torch.device("cpu")
        device = torch.device("cuda", 0)
    else:
        seen = torch.cuda.device_count() if available else 0
        index = int(m.group(1) or 0)
        if index >= seen:
            raise SandmineError(
                f"device '{spec}' asked, but torch {torch.__version__} sees {_seen(seen)}",
                where,
                "set it to auto or cpu, or run where torch sees that GPU (nvidia-smi; a CUDA build of torch;"
                " CUDA_VISIBLE_DEVICES)",
            )
        device = torch.device("cuda", index)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: results would vary run to run
    return device


def _seen(n: int) -> str:
    if n:
        return f"{n} CUDA device(s): cuda:0 … cuda:{n - 1}"
    built = torch.version.cuda
    return "no CUDA device" + (f" (built for CUDA {built})" if built else " (a CPU-only build of torch)")


def device_of(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (the CPU when it has neither)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def place(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` moved to `device`, in channels-last memory on CUDA (faster convolutions). No-op on the CPU."""
    if device.type == "cpu" and device_of(model).type == "cpu":
        return model
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def to_device(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch as a tensor on `device`: on the CPU the array itself (no copy); on CUDA copied from
    pinned memory without blocking, images ((N, C, H, W)) in channels-last memory."""
    t = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    if device.type == "cpu":
        return t
    if device.type == "cuda":
        t = t.pin_memory()
    t = t.to(device, non_blocking=True)
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` when `precision` is `bf16` (on the CPU too: it was asked); else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
