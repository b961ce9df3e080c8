"""Stage evaluate: stitched prediction on held-out observations -> pooled scores and plots."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import evaluate


def args(p):
    for name in ("model", "images", "labels", "aoi", "split", "out", "metrics", "plots"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.add_argument("--truth", type=Path, help="exact truth masks (synthetic sources only)")


if __name__ == "__main__":
    run(
        __doc__,
        args,
        lambda prm, a: evaluate.run(
            prm, a.model, a.images, a.labels, a.aoi, a.split, a.out, a.metrics, a.plots, a.truth
        ),
    )
