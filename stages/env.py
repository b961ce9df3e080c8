"""Stage env: the fingerprint (packages, pinned instruction sets, BLAS, devices, precision, threads) of the runs."""

from pathlib import Path

from sandmine.cli import run
from sandmine.steps import env


def args(p):
    p.add_argument("--out", type=Path, required=True)


if __name__ == "__main__":
    run(__doc__, args, lambda prm, a: env.run(prm, a.out))
