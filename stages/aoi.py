"""Stage aoi: rivers buffered by aoi.buffer_m -> an AOI mask per observation."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import aoi


def args(p):
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--rivers", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: aoi.run(prm, a.images, a.rivers, a.out))
