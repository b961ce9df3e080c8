"""Stage survey: mining along whole rivers (survey.rivers within aoi.buffer_m), per period, as one GeoPackage."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import survey


def args(p):
    for name in ("model", "out", "report", "metrics"):
        p.add_argument(f"--{name}", type=Path, required=True)


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: survey.run(prm, a.model, a.out, a.report, a.metrics))
