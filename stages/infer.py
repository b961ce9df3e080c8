"""Stage infer: probability COGs, masks, polygons and a map report for `infer` observations."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import infer


def args(p):
    for name in ("model", "images", "split", "out", "metrics", "report", "plots"):
        p.add_argument(f"--{name}", type=Path, required=True)


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: infer.run(prm, a.model, a.images, a.split, a.out, a.metrics, a.report, a.plots))
