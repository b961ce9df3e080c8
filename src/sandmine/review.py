"""Review decisions from the map reports: a reviewer's verdicts on predicted mines, the map's measured precision.

The map reports (`webmap.map_report`) let a reviewer mark each predicted polygon *mine*, *not a mine*
or *unsure* and draw missed mines; the page downloads one GeoJSON FeatureCollection (EPSG:4326) of
the observations the reviewer touched. Each feature carries the reader's `class` and `confidence`
(`sources.local.geojson_labels`), its `verdict`, `obs_id`, `date`, `site_id`, `area_ha`, `mean_prob`
and `decided_at`. `split_labels` writes one `{obs_id}.geojson` per observation for
`labels.source: geojson`; `summarise` measures the map's precision with a Wilson interval.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sandmine.core.errors import SandmineError
from sandmine.core.files import write_text
from sandmine.core.schema import VERDICT_CLASS

FORMAT_MEMBER = "sandmine_review"  # the FeatureCollection member that marks a decisions file
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default); (0, 1) when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def read_decisions(path: Path) -> list[dict]:
    """The features of a decisions file downloaded from a map report.

    Raises:
        SandmineError: the file is missing, not JSON, or not a decisions file (no `sandmine_review`
            member, or a feature without a known `verdict` or `obs_id`).
    """
    fix = "download the decisions from reports/map.html or reports/survey.html (Review panel: Download decisions)"
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise SandmineError("decisions file not found", str(path), fix) from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SandmineError(f"not valid JSON ({exc})", str(path), fix) from exc
    if not isinstance(doc, dict) or FORMAT_MEMBER not in doc or not isinstance(doc.get("features"), list):
        raise SandmineError(f"not a review decisions file (a FeatureCollection with a '{FORMAT_MEMBER}' member)",
                            str(path), fix)  # fmt: skip
    for k, f in enumerate(doc["features"]):
        props = f.get("properties") if isinstance(f, dict) else None
        if not isinstance(props, dict) or props.get("verdict") not in VERDICT_CLASS or not props.get("obs_id"):
            raise SandmineError(f"feature {k} has no verdict ({', '.join(VERDICT_CLASS)}) or no obs_id", str(path), fix)
    return doc["features"]


@dataclass
class Summary:
    """Counts of a decisions file: overall, per observation, and the missed mines drawn."""

    counts: Counter = field(default_factory=Counter)  # verdict → polygons
    hectares: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # verdict → ha
    by_obs: dict[str, Counter] = field(default_factory=dict)  # obs_id → verdict → polygons
    dates: dict[str, str] = field(default_factory=dict)  # obs_id → date (period label for the survey)
    missed: list[dict] = field(default_factory=list)  # properties of the drawn mines

    @property
    def precision(self) -> float:
        n = self.counts["mine"] + self.counts["not_mine"]
        return self.counts["mine"] / n if n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.counts["mine"], self.counts["mine"] + self.counts["not_mine"])


def summarise(features: list[dict]) -> Summary:
    """Verdict counts (and hectares) overall and per observation; `read_decisions` checked the features."""
    s = Summary()
    by_obs: dict[str, Counter] = defaultdict(Counter)
    for f in features:
        p = f["properties"]
        verdict, obs = p["verdict"], str(p["obs_id"])
        s.counts[verdict] += 1
        s.hectares[verdict] += float(p.get("area_ha") or 0.0)
        by_obs[obs][verdict] += 1
        s.dates.setdefault(obs, str(p.get("period") or p.get("date") or ""))
        if verdict == "missed":
            s.missed.append(p)
    s.by_obs = dict(sorted(by_obs.items()))
    return s


def report(s: Summary, name: str) -> str:
    """The summary as the text `sandmine review-stats` prints."""
    mine, wrong, unsure = s.counts["mine"], s.counts["not_mine"], s.counts["unsure"]
    n = mine + wrong
    lines = [f"{name}: {sum(s.counts.values())} polygons in {len(s.by_obs)} observation(s)"]
    if n:
        lo, hi = s.interval
        ha = s.hectares["mine"] + s.hectares["not_mine"]
        lines.append(
            f"precision {s.precision:.3f} ({mine} mine / {n} decided), Wilson 95 % CI {lo:.3f}–{hi:.3f}; "
            f"by area {s.hectares['mine'] / ha if ha else math.nan:.3f} ({s.hectares['mine']:.1f} / {ha:.1f} ha)"
        )
    else:
        lines.append("precision: undefined (no polygon marked mine or not a mine)")
    lines.append(
        f"left out: {unsure} unsure, {s.counts['unreviewed']} unreviewed "
        "(precision is the map's when every polygon, or a random sample of them, was decided)"
    )
    cols = ("mine", "not_mine", "unsure", "unreviewed", "missed")
    width = max([len("observation"), *(len(o) for o in s.by_obs)])
    lines.append(f"{'observation':<{width}}  {'date/period':<21}  " + "  ".join(f"{c:>10}" for c in cols))
    for obs, c in s.by_obs.items():
        lines.append(f"{obs:<{width}}  {s.dates[obs]:<21}  " + "  ".join(f"{c[k]:>10}" for k in cols))
    lines.append(f"missed mines drawn: {len(s.missed)} ({s.hectares['missed']:.2f} ha)")
    for p in s.missed:
        lines.append(f"  {p['obs_id']}: {float(p.get('area_ha') or 0):.2f} ha, drawn {p.get('decided_at', '?')}")
    return "\n".join(lines)


def split_labels(features: list[dict], folder: Path) -> list[Path]:
    """One `{obs_id}.geojson` FeatureCollection per observation in `folder`, as `labels.source: geojson`
    reads it (`labels.folder: <folder>`); returns the files written.

    Raises:
        SandmineError: an obs_id that cannot be a file name (empty, or with a path separator).
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for f in features:
        groups[str(f["properties"]["obs_id"])].append(f)
    written = []
    for obs, feats in sorted(groups.items()):
        if not obs.strip() or "/" in obs or "\\" in obs or obs in (".", ".."):
            raise SandmineError(f"obs_id '{obs}' cannot name a label file", "decisions file", "fix the obs_id")
        out = folder / f"{obs}.geojson"
        write_text(out, json.dumps({"type": "FeatureCollection", "features": feats}) + "\n")
        written.append(out)
    return written
