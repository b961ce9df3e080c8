"""Stage annotate-pull: the label export -> per-observation GeoJSON and masks on the image grid."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import annotate_pull


def args(p):
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: annotate_pull.run(prm, a.source, a.images, a.out, a.metrics))
