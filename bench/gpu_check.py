"""The train and evaluate stages' own code (`steps.train.run`, `steps.evaluate.run`; not dvc, not the stage
scripts, which import dvclive) on the tiny world of bench/gpu_world.py, at bf16 and fp32, in one table.

    python bench/gpu_check.py --world gpu_world --device cuda      # what bench/gpu_check.sh runs
    python bench/gpu_check.py --world gpu_world --device cpu --epochs 1 --windows 64

Also lists the distributions this run imported that a fresh GPU machine lacks and gpu_wheels/ does not carry
(empty: the wheels are enough).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from sandmine.core.config import load_params
from sandmine.device import resolve_device
from sandmine.steps import evaluate, train

# what the GPU machine has (FIELD_NOTES.md: GPUs); their dependencies count as present too
ON_GPU_MACHINE = ("torch", "timm", "numpy", "scipy", "scikit-image", "pandas", "matplotlib", "tqdm")
# imported here when installed, inside try blocks: torch's pynvml (torch.cuda) and pydot (torch.fx's graph drawer),
# numpy.f2py's charset_normalizer
OPTIONAL = {"nvidia-ml-py", "pydot", "charset-normalizer"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names: tuple[str, ...]) -> set[str]:
    """`names` and everything they require (extras left out), as installed here."""
    seen: set[str] = set()
    todo = [_norm(n) for n in names]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        try:
            reqs = md.requires(n) or []
        except md.PackageNotFoundError:
            continue
        todo += [_norm(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0]) for r in reqs if "extra ==" not in r]
    return seen


def missing_on_gpu(wheels: Path) -> list[str]:
    """Distributions imported by now that neither the GPU machine has nor `wheels` carries."""
    owners = md.packages_distributions()
    used = {_norm(d) for m in list(sys.modules) for d in owners.get(m.split(".")[0], [])}
    carried = {_norm(w.name.split("-")[0]) for w in wheels.glob("*.whl")}
    return sorted(used - _closure(ON_GPU_MACHINE) - carried - OPTIONAL - {"sandmine"})


def run_once(world: Path, device: str, precision: str, a: argparse.Namespace, out: Path) -> dict[str, float | str]:
    p = load_params(a.params)
    p = replace(
        p,
        train=replace(
            p.train,
            device=device,
            precision=precision,
            epochs=a.epochs,
            windows_per_epoch=a.windows,
            val_windows=a.windows // 2,
            workers=a.workers,
            resume=False,
        ),  # fmt: skip
        predict=replace(p.predict, device=device, precision=precision, workers=0),  # no Dask: one process
    )
    dev = resolve_device(device, "bench/gpu_check.py --device")
    out.mkdir(parents=True)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    train.run(p, world / "images", world / "labels", world / "aoi", world / "split.csv", out / "model.pt",
              out / "train.json", out / "timing.json", lambda epoch, m: None)  # fmt: skip
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate.run(p, out / "model.pt", world / "images", world / "labels", world / "aoi", world / "split.csv",
                 out / "eval", out / "evaluate.json", out / "plots")  # fmt: skip
    eval_s = time.perf_counter() - t0
    tm, ev = json.loads((out / "train.json").read_text()), json.loads((out / "evaluate.json").read_text())
    timing = json.loads((out / "timing.json").read_text())
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    return {
        "train_s": train_s,
        "windows_s": a.windows / timing["epoch_s"],
        "val_ap": tm["best_val_ap"],
        "eval_s": eval_s,
        "test_ap": ev["aoi_ap"],
        "peak": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=Path("gpu_world"))
    ap.add_argument("--wheels", type=Path, default=Path("gpu_wheels"))
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precisions", nargs="+", default=["bf16", "32"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--windows", type=int, default=384, help="training windows per epoch (val: half)")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader processes reading training windows")
    a = ap.parse_args()
    p = load_params(a.params)
    print(
        f"train + evaluate stage code on {a.world} ({len(list((a.world / 'images').glob('*.tif')))} COGs), "
        f"{p.model.encoder}+{p.model.decoder}, device {a.device}, {a.epochs} epochs of {a.windows} windows "
        f"(batch {p.train.batch_size}, {a.workers} loader workers), prediction batch {p.predict.batch_size}\n",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for q in a.precisions:
            try:
                r = run_once(a.world, a.device, q, a, Path(tmp) / q)
            except Exception as exc:  # reported, not hidden
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                rows.append(f"| {q} | **fails**: `{type(exc).__name__}: {first}` ||||||")
                continue
            peak = "—" if r["peak"] != r["peak"] else f"{r['peak']:.2f}"
            rows.append(
                f"| {q} | {r['train_s']:.1f} | {r['windows_s']:.0f} | {r['val_ap']:.3f} | {r['eval_s']:.1f} | "
                f"{r['test_ap']:.3f} | {peak} |"
            )
    print("| precision | train s (with calibration) | train windows/s (incl. val) | val AP | evaluate s | test AP "
          "| peak GiB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    lacking = missing_on_gpu(a.wheels)
    print(f"\nimported, but neither on the GPU machine nor in {a.wheels}/: {', '.join(lacking) or 'none'}")


if __name__ == "__main__":
    main()
