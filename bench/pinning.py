"""What the CPU pin costs: train s/epoch and prediction km²/s with SANDMINE_CPU_PIN=off (free) and pinned (default).

    python bench/pinning.py [--rounds 2] [--steps 4] [--size 512] [--image data/images/X.tif]

Each measurement runs in a fresh process (the pin acts at start-up), alternating free and pinned
(A B A B …) so that a load from other work on the machine falls on both; it prints each run and the
medians. Train: `--steps` AdamW steps and as many validation batches of the params.yaml model on
random windows of `train.window_px` (batch `train.batch_size`, `train.threads` threads), scaled to
one epoch (`windows_per_epoch` and `val_windows`). Prediction: `predict_file` with the params'
stitching over a `--size` px square tiled from `--image` (default: the first of data/images). Wall
and CPU seconds (all threads) are both given: on a shared machine the CPU seconds are steadier.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def child(what: str, params: Path, steps: int, size: int, image: Path | None) -> dict:
    # sandmine first: importing it pins the kernels (or not, with SANDMINE_CPU_PIN=off) before numpy and torch load
    import sandmine  # noqa: F401, I001
    import resource
    import tempfile
    import time

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from _scene import big_scene

    from sandmine import models
    from sandmine.core.config import load_params
    from sandmine.prediction import Stitch, predict_file

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    p = load_params(params)
    chans = [*p.model.bands, *p.model.indices]
    torch.manual_seed(0)
    net = models.build(p.model.encoder, p.model.decoder, chans)
    out = {"aten": torch.backends.cpu.get_cpu_capability()}
    if what == "train":
        torch.set_num_threads(p.train.threads)
        opt = torch.optim.AdamW(net.parameters(), lr=p.train.lr, weight_decay=p.train.weight_decay)
        b, px = p.train.batch_size, p.train.window_px
        x, y = torch.randn(b, len(chans), px, px), (torch.rand(b, 1, px, px) > 0.9).float()

        def step() -> None:
            net.train()
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
            opt.step()

        def val() -> None:
            net.eval()
            with torch.no_grad():
                net(x)

        step(), val()  # warm-up
        per = {}
        for name, fn in (("step", step), ("val", val)):
            w0, c0 = time.perf_counter(), cpu()
            for _ in range(steps):
                fn()
            per[name] = ((time.perf_counter() - w0) / steps, (cpu() - c0) / steps)
        n_step, n_val = p.train.windows_per_epoch / b, p.train.val_windows / b
        out["epoch_wall_s"] = n_step * per["step"][0] + n_val * per["val"][0]
        out["epoch_cpu_s"] = n_step * per["step"][1] + n_val * per["val"][1]
        return out
    torch.set_num_threads(p.predict.threads)
    src_image = image or sorted((ROOT / "data" / "images").glob("*.tif"))[0]
    meta = {"encoder": p.model.encoder, "decoder": p.model.decoder, "bands": list(p.model.bands),
            "indices": list(p.model.indices), "frozen": False, "mean": [0.1] * len(chans), "std": [0.1] * len(chans),
            "window_px": p.train.window_px, "train": {}}  # fmt: skip
    q = p.predict
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        torch.save(models.save_checkpoint(net, meta), t / "m.pt")
        model, ckpt = models.load_checkpoint(str(t / "m.pt"))
        src = big_scene(src_image, t / "scene.tif", size, size)
        stitch = Stitch(q.window_px, q.stride_px, q.discard_px, q.batch_size, q.blend)
        w0, c0 = time.perf_counter(), cpu()
        predict_file(model, ckpt, src, t / "out.tif", stitch)
        wall, cpus = time.perf_counter() - w0, cpu() - c0
    km2 = size * size * 100 / 1e6  # 10 m pixels
    out.update({"km2": km2, "wall_s": wall, "cpu_s": cpus, "km2_per_s": km2 / wall})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--image", type=Path)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--child", choices=["train", "predict"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.params, a.steps, a.size, a.image)))
        return
    import os

    runs: dict[tuple[str, str], list[dict]] = {}
    for r in range(a.rounds):
        for mode, pin in (("free", "off"), ("pinned", "")):
            env = {k: v for k, v in os.environ.items() if k != "SANDMINE_CPU_PIN"}
            if pin:
                env["SANDMINE_CPU_PIN"] = pin
            for what in ("train", "predict"):
                cmd = [sys.executable, __file__, "--child", what, "--params", str(a.params), "--steps", str(a.steps),
                       "--size", str(a.size)] + (["--image", str(a.image)] if a.image else [])  # fmt: skip
                res = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if res.returncode:
                    sys.exit(f"{what} ({mode}) failed:\n{res.stderr[-3000:]}")
                got = json.loads(res.stdout.strip().splitlines()[-1])
                runs.setdefault((mode, what), []).append(got)
                print(f"round {r + 1} {mode:6s} {what:7s} " + " ".join(f"{k} {v:.3g}" if isinstance(v, float)
                      else f"{k} {v}" for k, v in got.items()), flush=True)  # fmt: skip
    print("\n| | ATen | train s/epoch wall | train s/epoch CPU | predict km²/s wall | predict CPU s |")
    print("|---|---|---|---|---|---|")
    for mode in ("free", "pinned"):
        tr, pr = runs[(mode, "train")], runs[(mode, "predict")]

        def med(rows: list[dict], key: str) -> float:
            return statistics.median(r[key] for r in rows)

        print(f"| {mode} | {tr[0]['aten']} | {med(tr, 'epoch_wall_s'):.0f} | {med(tr, 'epoch_cpu_s'):.0f} | "
              f"{med(pr, 'km2_per_s'):.2f} | {med(pr, 'cpu_s'):.2f} |")  # fmt: skip
    print(f"\nmedians of {a.rounds} alternated runs each")


if __name__ == "__main__":
    main()
