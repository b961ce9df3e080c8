"""Stage split: sites clustered by location; whole clusters to train, val and test."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import split


def args(p):
    p.add_argument("--sites", type=Path, required=True)
    p.add_argument("--observations", type=Path, required=True)
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--plot", type=Path, required=True)


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: split.run(prm, a.sites, a.observations, a.labels, a.out, a.metrics, a.plot))
