"""Survey periods: spans of dates, both ends included, parsed from `START/END` and kept in order."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sandmine.core.errors import SandmineError

PERIOD = re.compile(r"^(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    """A span of dates, both ends included; its image is a composite over the span (real sources)
    or the view on its middle day (the synthetic world)."""

    start: dt.date
    end: dt.date

    @property
    def label(self) -> str:
        """`2025-10-01_2025-12-31`: the period in file names and tables."""
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def middle(self) -> dt.date:
        """The day an Earth Engine composite of `days` is centred on to cover exactly this period
        (`gee.composite` spans date − days // 2 to date + days − days // 2)."""
        return self.start + dt.timedelta(days=self.days // 2)


def parse_periods(texts: list[str], where: str) -> list[Period]:
    """`["2025-10-01/2025-12-31", …]` to periods in date order.

    Raises:
        SandmineError: a period is not `START/END` with real dates, ends before it starts, or overlaps another.
    """
    if not texts:
        raise SandmineError("no periods", where, "give at least one, e.g. [2025-10-01/2025-12-31]")
    out = []
    for i, text in enumerate(texts):
        m = PERIOD.match(str(text).strip())
        try:
            if m is None:
                raise ValueError("not START/END")
            start, end = dt.date.fromisoformat(m.group(1)), dt.date.fromisoformat(m.group(2))
        except ValueError as exc:
            raise SandmineError(
                f"period {i + 1} '{text}' is not START/END with ISO dates ({exc})",
                where,
                "write periods as YYYY-MM-DD/YYYY-MM-DD, e.g. 2025-10-01/2025-12-31",
            ) from exc
        if end < start:
            raise SandmineError(f"period '{text}' ends before it starts", where, "swap its dates")
        out.append(Period(start, end))
    out.sort()
    for a, b in zip(out, out[1:]):
        if b.start <= a.end:
            raise SandmineError(
                f"periods {a.start}/{a.end} and {b.start}/{b.end} overlap",
                where,
                "make each period start after the previous one ends (change is measured between them)",
            )
    return out
