"""Training seconds per epoch of CNN cells: sandmine's own registry (before) vs smp-built (now), on the CPU.

Each side runs in its own process: "before" imports `src/` of commit `--before` (unpacked from git
into a temporary folder), "now" this checkout's. A cell takes training steps (forward, weighted-BCE
backward, AdamW step) on random windows of the train stage's size (params.yaml: `train.window_px`,
`train.batch_size`, the bands of `model.bands`) at `train.threads` threads; after one warm-up step,
the fastest of `--batches` steps times the batches per epoch (`train.windows_per_epoch` / batch) is
the epoch. The sides alternate for `--rounds` rounds and each keeps its fastest round, so that other
load on the machine hits both alike. Usage:

    python bench/smp_cells.py [--cells resnet18+unet resnet18+fpn] [--batches 4] [--rounds 2] [--before c5694c3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(cells: list[str], batches: int, params: str) -> None:
    import torch

    from sandmine import models
    from sandmine.core.config import load_params

    p = load_params(params)
    torch.set_num_threads(p.train.threads)
    chans, size, batch = list(p.model.bands), p.train.window_px, p.train.batch_size
    for cell in cells:
        encoder, decoder = cell.split("+")
        torch.manual_seed(0)
        model = models.build(encoder, decoder, chans).train()
        opt = torch.optim.AdamW(model.parameters(), lr=p.train.lr)
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(batch, len(chans), size, size, generator=gen)
        y = (torch.rand(batch, 1, size, size, generator=gen) < 0.1).float()
        loss = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(9.0))
        seconds = []
        for _ in range(batches + 1):
            start = time.perf_counter()
            opt.zero_grad()
            loss(model(x), y).backward()
            opt.step()
            seconds.append(time.perf_counter() - start)
        per_batch = min(seconds[1:])
        decoder_params = sum(t.numel() for t in model.decoder.parameters())
        print(
            json.dumps(
                {
                    "cell": cell,
                    "s_per_batch": per_batch,
                    "s_per_epoch": per_batch * math.ceil(p.train.windows_per_epoch / batch),
                    "parameters": sum(t.numel() for t in model.parameters()),
                    "decoder_parameters": decoder_params,
                    "shape": f"{batch} x {len(chans)} x {size} x {size}",
                }
            ),
            flush=True,
        )


def run_side(src: Path, cells: list[str], batches: int, params: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--worker", "--batches", str(batches), "--params", params, "--cells", *cells]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="+", default=["resnet18+unet", "resnet18+fpn"])
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--before", default="c5694c3", help="a commit with sandmine's own U-Net and FPN decoders")
    ap.add_argument("--params", default=str(Path("params.yaml").resolve()))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.cells, a.batches, a.params)
        return
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="sandmine-before-") as tmp:
        archive = subprocess.run(["git", "archive", a.before, "src"], cwd=root, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        srcs = {f"sandmine registry ({a.before})": Path(tmp) / "src", "smp-built (this checkout)": root / "src"}
        sides: dict[str, list[dict]] = {side: [] for side in srcs}
        for _ in range(a.rounds):
            for side, src in srcs.items():
                sides[side] += run_side(src, a.cells, a.batches, a.params)
    first = next(iter(sides.values()))[0]
    print(
        f"windows {first['shape']} (batch x channels x px x px); fastest of {a.batches} steps after one warm-up, "
        f"fastest of {a.rounds} alternating rounds\n"
    )
    print("| cell | built by | s per batch | s per epoch | parameters | decoder parameters |")
    print("|---|---|---|---|---|---|")
    for cell in a.cells:
        for side, rows in sides.items():
            r = min((r for r in rows if r["cell"] == cell), key=lambda r: r["s_per_batch"])
            print(
                f"| {cell} | {side} | {r['s_per_batch']:.2f} | {r['s_per_epoch']:.1f} | "
                f"{r['parameters']:,} | {r['decoder_parameters']:,} |"
            )


if __name__ == "__main__":
    main()
