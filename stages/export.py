"""Stage export: sites × dates -> one COG per observation (+ what the source delivers besides)."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import export


def args(p):
    p.add_argument("--sites", type=Path, required=True)
    p.add_argument("--observations", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--source-out", type=Path, required=True)
    p.add_argument("--previews", type=Path, help="folder for pictures of the synthetic world")


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: export.run(prm, a.sites, a.observations, a.images, a.source_out, a.previews))
