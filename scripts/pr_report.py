"""Build the pull-request report: metrics and params against a base revision, and changed plots.

CI posts it with CML (`cml comment create report.md`); it runs the same locally:

    python scripts/pr_report.py --base main --out report.md

Sections: first, whether this run and the base ran under the same fingerprint (`metrics/env.json`:
packages, pinned instruction sets, BLAS, devices, precision, threads; where they differ the metric
differences are not the pull request's alone, and the report says so before any number); a
synthetic-data banner when the pipeline ran on the embedded world, `dvc metrics diff` and `dvc
params diff` (Markdown tables), and every plot image under `plots/` or `dvclive/plots/` that differs
from the base, embedded so CML uploads it. Timings (`metrics/timing.json`) are listed apart: they
measure the machine, not the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sandmine.core.determinism import differences

IMAGE_SUFFIXES = (".png", ".jpg", ".svg")
ENV = "metrics/env.json"


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed: {res.stderr.strip()[-2000:]}")
    return res.stdout.strip()


def changed_plots(base: str) -> list[str]:
    """Plot images that differ from `base` (tracked by git: metrics and plots are committed)."""
    out = _run(["git", "diff", "--name-only", base, "--", "plots", "dvclive/plots"])
    new = _run(["git", "ls-files", "--others", "--exclude-standard", "plots", "dvclive/plots"])
    names = sorted({n for n in (out + "\n" + new).splitlines() if n.endswith(IMAGE_SUFFIXES) and Path(n).exists()})
    return names


def base_fingerprint(base: str) -> dict | None:
    """`metrics/env.json` as committed at `base`, or None where it has none."""
    res = subprocess.run(["git", "show", f"{base}:{ENV}"], capture_output=True, text=True)
    return json.loads(res.stdout) if res.returncode == 0 else None


def fingerprint_section(base: str) -> tuple[str, bool]:
    """The report's first words: do this run and `base` compare like with like? And whether they do."""
    this = json.loads(Path(ENV).read_text()) if Path(ENV).exists() else None
    theirs = base_fingerprint(base)
    if this is None or theirs is None:
        which = f"`{base}`" if theirs is None else "this run"
        return (
            f"> **FINGERPRINT UNKNOWN** — {which} has no `{ENV}`: whether the metric differences below come from "
            "the machine and packages or from this pull request cannot be told.\n",
            False,
        )
    diff = differences(theirs, this)
    if not diff:
        return f"Same fingerprint as `{base}` (`{ENV}`): the metric differences below are this pull request's.\n", True
    rows = "\n".join(f"| {k} | {a} | {b} |" for k, a, b in diff)
    return (
        f"> **NOT LIKE WITH LIKE** — this run's fingerprint (`{ENV}`) differs from `{base}`'s in what decides the "
        "bits of every number. The metric differences below come from these as well: they are not changes made "
        "by this pull request alone.\n\n"
        f"| field | {base} | this run |\n|---|---|---|\n{rows}\n",
        False,
    )


def build(base: str, max_plots: int = 12) -> str:
    parts = [f"# sandmine: results of this pull request against `{base}`\n"]
    first, alike = fingerprint_section(base)
    parts.append(first)
    if Path("params.yaml").exists() and "kind: synthetic" in Path("params.yaml").read_text():
        parts.append("> **SYNTHETIC DATA** — these numbers come from the embedded synthetic world.\n")
    metrics = _run(["dvc", "metrics", "diff", base, "--md"])
    apart = ("metrics/timing.json", ENV)  # the machine and the fingerprint, not results
    timing = [line for line in metrics.splitlines() if "metrics/timing.json" in line]
    body = [line for line in metrics.splitlines() if not any(a in line for a in apart)]
    title = "## Metrics" if alike else "## Metrics (under another fingerprint than the base: see above)"
    parts.append(f"{title}\n\n" + ("\n".join(body) if len(body) > 2 else "No metric changed.") + "\n")
    params = _run(["dvc", "params", "diff", base, "--md"])
    parts.append("## Params\n\n" + (params or "No param changed.") + "\n")
    plots = changed_plots(base)
    section = ["## Changed plots\n"]
    if not plots:
        section.append("No plot changed.\n")
    for name in plots[:max_plots]:
        section.append(f"### {name}\n\n![{name}](./{name})\n")
    if len(plots) > max_plots:
        section.append(f"… and {len(plots) - max_plots} more: " + ", ".join(plots[max_plots:]) + "\n")
    parts.append("\n".join(section))
    if len(timing) > 0:
        header = metrics.splitlines()[:2]
        parts.append("## Timings (this machine, not results)\n\n" + "\n".join(header + timing) + "\n")
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="main", help="git revision to compare with")
    ap.add_argument("--out", type=Path, default=Path("report.md"))
    a = ap.parse_args()
    start = time.perf_counter()
    text = build(a.base)
    tmp = a.out.with_name(f".tmp-{a.out.name}-{os.getpid()}")  # unique: two runs never share one temporary file
    tmp.write_text(text)
    tmp.replace(a.out)
    print(f"report -> {a.out} ({len(text)} characters, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
