"""GPU check: training windows/s and prediction km²/s of three models at bf16 and fp32, with peak GPU memory.

Each model (resnet18 + unet, resnet50 + unet, vit_base + progressive) gets synthetic random inputs with
the real band count (the 14 bands of `model.bands`, no index channels): training steps on batches of
`train.batch_size` windows of 128 px (forward, weighted BCE, backward, AdamW step, copies from host
memory included), and stitched prediction (`predict()`: 512 px windows, stride 480, Gaussian
blending, the same code as the evaluate and infer stages) over a square raster at 10 m. On a GPU it
measures bf16 and fp32 and `torch.cuda.max_memory_allocated`, then the same on the CPU at fp32 for the
ratio (fewer steps there: `--cpu-steps`). Deterministic algorithms are on, as in the pipeline. Usage:

    python bench/gpu.py                       # auto: the GPU when torch sees one, then the CPU
    python bench/gpu.py --quick               # a smoke run: fewer steps, smaller rasters
    python bench/gpu.py --device cpu --steps 2 --quick
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from sandmine import models, training
from sandmine.core.config import Params
from sandmine.device import autocast, place, resolve_device, to_device
from sandmine.prediction import Stitch, predict

MODELS = [("resnet18", "unet"), ("resnet50", "unet"), ("vit_base", "progressive")]
KM2_PER_PX = 1e-4  # a 10 m pixel


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device, run: Callable[[], float]) -> tuple[float, float]:
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


def predict_rate(model: torch.nn.Module, precision: str, size_px: int, batch: int) -> float:
    """km² per second of stitched prediction over a (14, size_px, size_px) raster."""
    chans = len(Params().model.bands)
    image = np.random.default_rng(1).normal(0, 1, (chans, size_px, size_px)).astype(np.float32)
    s = Stitch(512, 480, 16, batch, "gaussian", precision)
    model.eval()
    predict(model, image[:, :512, :512], s)  # warm-up
    start = time.perf_counter()
    predict(model, image, s)  # returns host numpy: the device is done when it returns
    return size_px * size_px * KM2_PER_PX / (time.perf_counter() - start)


def measure(
    encoder: str, decoder: str, device: torch.device, precision: str, steps: int, size_px: int, pbatch: int
) -> dict[str, float]:
    torch.manual_seed(0)
    chans = list(Params().model.bands)
    model = place(models.build(encoder, decoder, chans), device)
    batch = Params().train.batch_size
    train, train_gb = _peak(device, lambda: train_rate(model, device, precision, batch, steps))
    pred, pred_gb = _peak(device, lambda: predict_rate(model, precision, size_px, pbatch))
    return {"train": train, "predict": pred, "train_gb": train_gb, "predict_gb": pred_gb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto: the GPU when torch sees one)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per model on the device")
    ap.add_argument("--cpu-steps", type=int, default=3, help="timed training steps per model on the CPU (0: skip)")
    ap.add_argument("--quick", action="store_true", help="3 steps, rasters of 1024 px (GPU) and 512 px (CPU)")
    ap.add_argument("--size", type=int, default=4096, help="prediction raster side on the GPU, px (4096: 168 km²)")
    ap.add_argument("--cpu-size", type=int, default=1024, help="prediction raster side on the CPU, px")
    ap.add_argument("--predict-batch", type=int, default=8, help="prediction windows per batch on the GPU")
    ap.add_argument("--models", nargs="+", default=[f"{e}+{d}" for e, d in MODELS], help="encoder+decoder pairs")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.cpu_steps = min(a.steps, 3), min(a.cpu_steps, 1)
        a.size, a.cpu_size = min(a.size, 1024), min(a.cpu_size, 512)
    device = resolve_device(a.device, "bench/gpu.py --device")
    runs: list[tuple[str, torch.device, str, int, int, int]] = []
    if device.type == "cuda":
        runs += [(m, device, q, a.steps, a.size, a.predict_batch) for m in a.models for q in ("bf16", "32")]
        if a.cpu_steps:
            runs += [(m, torch.device("cpu"), "32", a.cpu_steps, a.cpu_size, 1) for m in a.models]
        name = torch.cuda.get_device_name(device)
    else:
        runs += [(m, device, "32", a.steps, a.cpu_size, 1) for m in a.models]
        name = "no GPU"
    batch, bands = Params().train.batch_size, len(Params().model.bands)
    sizes = f"{a.size} px (GPU) / {a.cpu_size} px (CPU)" if device.type == "cuda" else f"{a.cpu_size} px"
    print(
        f"device {device} ({name}); torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}; "
        f"CPU: {torch.get_num_threads()} threads; training batches of {batch} x ({bands}, 128, 128); "
        f"prediction 512 px windows, stride 480, rasters of {sizes}\n",
        flush=True,
    )
    print("| model | device | precision | train windows/s | predict km²/s | train peak GiB | predict peak GiB |")
    print("|---|---|---|---|---|---|---|")
    results: dict[tuple[str, str, str], dict[str, float]] = {}
    for pair, dev, precision, steps, size, pbatch in runs:
        encoder, decoder = pair.split("+")
        r = measure(encoder, decoder, dev, precision, steps, size, pbatch)
        results[(pair, dev.type, precision)] = r
        gb = "—" if dev.type != "cuda" else f"{r['train_gb']:.2f}"
        pgb = "—" if dev.type != "cuda" else f"{r['predict_gb']:.2f}"
        print(f"| {pair} | {dev} | {precision} | {r['train']:.1f} | {r['predict']:.2f} | {gb} | {pgb} |", flush=True)
    if device.type == "cuda" and a.cpu_steps:
        print("\n| model | precision | train speed-up vs CPU fp32 | predict speed-up vs CPU fp32 |")
        print("|---|---|---|---|")
        for pair in a.models:
            cpu = results[(pair, "cpu", "32")]
            for precision in ("bf16", "32"):
                g = results[(pair, "cuda", precision)]
                ratios = f"{g['train'] / cpu['train']:.0f}x | {g['predict'] / cpu['predict']:.0f}x"
                print(f"| {pair} | {precision} | {ratios} |")


if __name__ == "__main__":
    main()
