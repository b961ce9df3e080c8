"""The sources by `source.kind`: the one place that chooses where imagery comes from."""

from __future__ import annotations

from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.sources.base import Source
from sandmine.sources.gee import GeeSource
from sandmine.sources.local import LocalSource
from sandmine.sources.stac import StacSource
from sandmine.sources.synthetic.source import SyntheticSource

SOURCES: dict[str, type[Source]] = {s.kind: s for s in (SyntheticSource, GeeSource, LocalSource, StacSource)}


def create(p: Params) -> Source:
    """The source named by `source.kind`; an unknown kind is an error listing the known ones."""
    if p.source.kind not in SOURCES:
        raise SandmineError(
            f"unknown source.kind '{p.source.kind}'", "params.yaml: source.kind", f"choose one of {', '.join(SOURCES)}"
        )
    return SOURCES[p.source.kind](p)
