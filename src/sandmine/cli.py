"""Shared start-up of stage scripts: logging, params, and user errors without tracebacks."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from sandmine.core import determinism
from sandmine.core.config import Params, load_params
from sandmine.core.errors import SandmineError


def run(
    description: str,
    add_args: Callable[[argparse.ArgumentParser], None],
    body: Callable[[Params, argparse.Namespace], None],
) -> None:
    """Parse arguments (every stage takes --params and --env), load params, run `body`.

    With `--env metrics/env.json` the stage first checks that it runs under the fingerprint recorded
    there (core/determinism.py: `check`). A SandmineError ends the stage with exit code 1 and its
    message, no traceback.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--env", type=Path, help="metrics/env.json: run only under the fingerprint recorded there")
    add_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        if args.env is not None:
            determinism.check(params, args.env)
        body(params, args)
    except SandmineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
