"""Stage pretrain: self-supervised pretraining (ssl.method) of model.encoder; `none` writes a marker only."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import pretrain


def args(p):
    for name in ("images", "aoi", "split", "out", "metrics"):
        p.add_argument(f"--{name}", type=Path, required=True)


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: pretrain.run(prm, a.images, a.aoi, a.split, a.out, a.metrics))
