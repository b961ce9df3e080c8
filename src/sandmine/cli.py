"""Shared start-up of stage scripts: logging, params, and user errors without tracebacks."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from sandmine.core.config import Params, load_params
from sandmine.core.errors import SandmineError


def run(
    description: str,
    add_args: Callable[[argparse.ArgumentParser], None],
    body: Callable[[Params, argparse.Namespace], None],
) -> None:
    """Parse arguments (every stage takes --params), load params, run `body`.

    A SandmineError ends the stage with exit code 1 and its message, no traceback.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml")
    add_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        body(load_params(args.params), args)
    except SandmineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
