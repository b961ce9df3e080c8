"""Build the pull-request report: metrics and params against a base revision, and changed plots.

CI posts it with CML (`cml comment create report.md`); it runs the same locally:

    python scripts/pr_report.py --base main --out report.md

Sections: a synthetic-data banner when the pipeline ran on the embedded world, `dvc metrics diff`
and `dvc params diff` (Markdown tables), and every plot image under `plots/` or `dvclive/plots/`
that differs from the base, embedded so CML uploads it. Timings (`metrics/timing.json`) are listed
apart: they measure the machine, not the model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".svg")


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


def build(base: str, max_plots: int = 12) -> str:
    parts = [f"# sandmine: results of this pull request against `{base}`\n"]
    if Path("params.yaml").exists() and "kind: synthetic" in Path("params.yaml").read_text():
        parts.append("> **SYNTHETIC DATA** — these numbers come from the embedded synthetic world.\n")
    metrics = _run(["dvc", "metrics", "diff", base, "--md"])
    timing = [line for line in metrics.splitlines() if "metrics/timing.json" in line]
    body = [line for line in metrics.splitlines() if "metrics/timing.json" not in line]
    parts.append("## Metrics\n\n" + ("\n".join(body) if len(body) > 2 else "No metric changed.") + "\n")
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
