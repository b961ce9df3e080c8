"""Stage annotate-pull: the label export -> per-observation GeoJSON and masks on the image grid."""

from pathlib import Path

from sandmine import steps
from sandmine.cli import run


def args(p):
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: steps.annotate_pull(prm, a.source, a.images, a.out, a.metrics))
