"""GPU check: for three models at bf16 and fp32, training windows/s, the prediction limit (the model alone on
windows resident on the device), stitched prediction km²/s and its ratio to the limit, and peak GPU memory.

Each model (resnet18 + unet, resnet50 + unet, vit_base + progressive) gets synthetic random inputs with the real
band count (the 14 bands of `model.bands`, no index channels):
- train: steps on batches of `train.batch_size` windows of 128 px (forward, weighted BCE, backward, AdamW step,
  copies from host memory included), after warm-up;
- limit: the model alone over non-overlapping 512 px windows already on the device, `--predict-batch` at a time
  (no blending, no copies, no I/O): the most any stitching can reach;
- stitched: `predict()` (512 px windows, stride 480, discard 16, Gaussian blending: the code of the evaluate and
  infer stages) over a (14, size, size) raster in host memory, so reading, copies and blending count;
- ratio: stitched / limit.
On a GPU both precisions run, then (unless `--cpu-steps 0`) the CPU at fp32 on a smaller raster. A model that
fails is reported with its error (type, message, where), not hidden. Deterministic algorithms are on, as in the
pipeline. Usage:

    python bench/gpu.py                       # auto: the GPU when torch sees one, then the CPU
    python bench/gpu.py --quick               # a smoke run: fewer steps, smaller rasters
    python bench/gpu.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sandmine import models, training
from sandmine.core.config import Params
from sandmine.device import autocast, place, resolve_device, to_device
from sandmine.prediction import Stitch, auto_batch, predict

MODELS = [("resnet18", "unet"), ("resnet50", "unet"), ("vit_base", "progressive")]
KM2_PER_PX = 1e-4  # a 10 m pixel
WINDOW, STRIDE, DISCARD = 512, 480, 16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device, run: Callable[[], Any]) -> tuple[Any, float]:
    """(result of `run`, peak GiB allocated on a CUDA `device` while it ran; NaN elsewhere)."""
    if device.type != "cuda":
        return run(), float("nan")
    _sync(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    out = run()
    _sync(device)
    return out, torch.cuda.max_memory_allocated(device) / 2**30


def train_rate(model: torch.nn.Module, device: torch.device, precision: str, batch: int, steps: int) -> float:
    """Training windows per second over `steps` timed steps (after warm-up), host-to-device copies included."""
    rng = np.random.default_rng(0)
    chans = len(Params().model.bands)
    x = rng.normal(0, 1, (batch, chans, 128, 128)).astype(np.float32)
    y = (rng.random((batch, 128, 128)) < 0.06).astype(np.uint8)
    w = np.ones((batch, 128, 128), np.float32)
    loss = training.loss_fn("wbce", 10.0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step() -> None:
        with autocast(device, precision):
            logits = model(to_device(x, device))
        value = loss(logits[:, 0].float(), to_device(y, device), to_device(w, device))
        opt.zero_grad()
        value.backward()
        opt.step()

    for _ in range(2 if device.type == "cuda" else 1):  # warm-up: kernels chosen, memory pools filled
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


@torch.no_grad()
def limit_rate(model: torch.nn.Module, device: torch.device, precision: str, size_px: int, batch: int) -> float:
    """km² per second of the model alone over the (size_px / 512)² windows of a raster, resident on `device`."""
    chans = len(Params().model.bands)
    n = max(1, (size_px // WINDOW) ** 2)
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.randn((n, chans, WINDOW, WINDOW), generator=gen, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    model.eval()

    def run(k: int) -> None:
        for b in range(0, k, batch):
            with autocast(device, precision):
                torch.sigmoid(model(x[b : min(b + batch, k)]).float())

    run(min(batch, n))  # warm-up
    _sync(device)
    start = time.perf_counter()
    run(n)
    _sync(device)
    return n * WINDOW * WINDOW * KM2_PER_PX / (time.perf_counter() - start)


@torch.no_grad()
def stitched_rate(model: torch.nn.Module, precision: str, image: np.ndarray, batch: int | str) -> float:
    """km² per second of stitched prediction (`predict()`) of a (C, size, size) raster in host memory."""
    s = Stitch(WINDOW, STRIDE, DISCARD, batch, "gaussian", precision)
    model.eval()
    predict(model, image[:, : 2 * WINDOW, : 2 * WINDOW], s)  # warm-up (and batch_size auto's probe)
    start = time.perf_counter()
    predict(model, image, s)  # returns host numpy: the device is done when it returns
    return image.shape[1] * image.shape[2] * KM2_PER_PX / (time.perf_counter() - start)


def measure(
    encoder: str, decoder: str, device: torch.device, precision: str, steps: int, image: np.ndarray, pbatch: str
) -> dict[str, Any]:
    """One row: train windows/s, limit and stitched km²/s, the prediction batch, peak GiB of each part."""
    torch.manual_seed(0)
    chans = list(Params().model.bands)
    model = place(models.build(encoder, decoder, chans), device)
    batch = Params().train.batch_size
    r: dict[str, Any] = {}
    r["train"], r["train_gb"] = _peak(device, lambda: train_rate(model, device, precision, batch, steps))
    model.eval()
    sample = torch.from_numpy(image[:, :WINDOW, :WINDOW].copy())
    r["batch"] = auto_batch(model, sample, precision) if pbatch == "auto" else int(pbatch)
    r["limit"], _ = _peak(device, lambda: limit_rate(model, device, precision, image.shape[1], r["batch"]))
    r["stitched"], r["predict_gb"] = _peak(device, lambda: stitched_rate(model, precision, image, pbatch))
    return r


def _where(exc: BaseException) -> str:
    """The innermost frame of sandmine's own code in `exc`'s traceback (else the innermost), as path:line."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/sandmine/" in f.filename] or frames
    f = ours[-1]
    return f"{f.filename.split('/src/')[-1]}:{f.lineno}"


def _gib(v: float) -> str:
    return "—" if v != v else f"{v:.2f}"  # NaN: not on a GPU


def _image(size: int) -> np.ndarray:
    chans = len(Params().model.bands)
    return np.random.default_rng(1).standard_normal((chans, size, size), dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto: the GPU when torch sees one)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per model on the device")
    ap.add_argument("--cpu-steps", type=int, default=3, help="timed training steps per model on the CPU (0: skip)")
    ap.add_argument("--quick", action="store_true", help="3 steps, rasters of 2048 px (GPU) and 512 px (CPU)")
    ap.add_argument("--size", type=int, default=8192, help="prediction raster side on the GPU, px (8192: 671 km²)")
    ap.add_argument("--cpu-size", type=int, default=1024, help="prediction raster side on the CPU, px")
    ap.add_argument("--predict-batch", default="auto", help="prediction windows per batch on the GPU, or auto")
    ap.add_argument("--models", nargs="+", default=[f"{e}+{d}" for e, d in MODELS], help="encoder+decoder pairs")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.cpu_steps = min(a.steps, 3), min(a.cpu_steps, 1)
        a.size, a.cpu_size = min(a.size, 2048), min(a.cpu_size, 512)
    device = resolve_device(a.device, "bench/gpu.py --device")
    runs: list[tuple[str, torch.device, str, int, int, str]] = []
    if device.type == "cuda":
        runs += [(m, device, q, a.steps, a.size, a.predict_batch) for m in a.models for q in ("bf16", "32")]
        if a.cpu_steps:
            runs += [(m, torch.device("cpu"), "32", a.cpu_steps, a.cpu_size, "1") for m in a.models]
        name = torch.cuda.get_device_name(device)
    else:
        runs += [(m, device, "32", a.steps, a.cpu_size, "1") for m in a.models]
        name = "no GPU"
    batch, bands = Params().train.batch_size, len(Params().model.bands)
    sizes = f"{a.size} px (GPU) / {a.cpu_size} px (CPU)" if device.type == "cuda" else f"{a.cpu_size} px"
    print(
        f"device {device} ({name}); torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}; "
        f"CPU: {torch.get_num_threads()} threads; training batches of {batch} x ({bands}, 128, 128); "
        f"prediction {WINDOW} px windows, stride {STRIDE}, Gaussian blend, rasters of {sizes}; "
        f"prediction batch {a.predict_batch} on the GPU, 1 on the CPU\n",
        flush=True,
    )
    print(
        "| model | device | precision | train windows/s | train peak GiB | predict batch | limit km²/s "
        "| stitched km²/s | stitched / limit | predict peak GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    images: dict[int, np.ndarray] = {}
    for pair, dev, precision, steps, size, pbatch in runs:
        encoder, decoder = pair.split("+")
        label = f"| {pair} | {dev} | {precision} |"
        image = images.setdefault(size, _image(size))
        try:
            r = measure(encoder, decoder, dev, precision, steps, image, pbatch)
        except Exception as exc:  # a model that fails is reported, not hidden
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"{label} **fails**: `{type(exc).__name__}: {msg}` at {_where(exc)} |||||||", flush=True)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            continue
        print(
            f"{label} {r['train']:.1f} | {_gib(r['train_gb'])} | {r['batch']} | {r['limit']:.1f} | "
            f"{r['stitched']:.1f} | {r['stitched'] / r['limit']:.2f} | {_gib(r['predict_gb'])} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
