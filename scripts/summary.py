"""Print the numbers a researcher reads first after `make repro`, against the random and baseline rows.

Reads metrics/evaluate.json (held-out test clusters) and, when the commit has experiments, the
classical baselines' rows (`model.decoder: none`, e.g. `rf`, `sp-gbm` of `make sweep`) from
`dvc exp show --json`. First of all it says where this run's fingerprint (metrics/env.json beside
evaluate.json) differs from the committed one (git HEAD) or from a baseline row's: those numbers
then differ by the machine and packages too, not by the code alone.
Usage: python scripts/summary.py [--metrics metrics/evaluate.json] [--exp-json F]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

from sandmine.core.determinism import differences

EVALUATE = "metrics/evaluate.json"
ENV = "metrics/env.json"
SURVEY = "metrics/survey.json"
LABEL_W, COL_W, MAX_BASELINES = 34, 15, 3


def _num(m: dict, key: str) -> float:
    v = m.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _fmt(template: str, *values: float) -> str:
    return "-" if any(math.isnan(v) for v in values) else template.format(*values)


def rows(m: dict) -> list[tuple[str, str]]:
    """(label, value) of one run's metrics; '-' where a key is missing."""
    pred, label = _num(m, "area_pred_ha"), _num(m, "area_label_ha")
    err = (pred - label) / label * 100 if label else math.nan
    return [
        ("test AP (aoi_ap)", _fmt("{:.3f}", _num(m, "aoi_ap"))),
        ("best F1 @ its threshold", _fmt("{:.3f} @{:.2f}", _num(m, "aoi_best_f1"), _num(m, "aoi_best_f1_threshold"))),
        ("F1 @ operating threshold", _fmt("{:.3f} @{:.2f}", _num(m, "aoi_f1"), _num(m, "aoi_threshold"))),
        ("  precision / recall there", _fmt("{:.2f} / {:.2f}", _num(m, "aoi_precision"), _num(m, "aoi_recall"))),
        ("mined area pred / label (ha)", _fmt("{:.0f} / {:.0f}", pred, label)),
        ("  area error", _fmt("{:+.0f} %", err)),
        ("objects: precision / recall", _fmt("{:.2f} / {:.2f}", _num(m, "object_precision"), _num(m, "object_recall"))),
    ]


def random_rows(m: dict) -> list[tuple[str, str]]:
    """A random scorer: AP is the mine fraction p; its best F1 calls every pixel mine, 2p / (1 + p)."""
    p = _num(m, "random_ap")
    out = [(label, "-") for label, _ in rows({})]
    out[0] = (out[0][0], _fmt("{:.3f}", p))
    out[1] = (out[1][0], _fmt("{:.3f}", 2 * p / (1 + p)))
    return out


def committed_env(env_path: Path) -> dict | None:
    """`env_path` as committed at git HEAD, or None (not in git, or not committed)."""
    try:
        res = subprocess.run(
            ["git", "-C", str(env_path.parent), "show", f"HEAD:./{env_path.name}"], capture_output=True, text=True
        )
    except OSError:
        return None
    return json.loads(res.stdout) if res.returncode == 0 else None


def fingerprint_note(this: dict | None, other: dict | None, whose: str) -> str | None:
    """A warning when `other`'s fingerprint differs from this run's in what decides the bits."""
    if this is None or other is None:
        return None
    diff = differences(other, this)
    if not diff:
        return None
    said = "; ".join(f"{k} {a} -> {b}" for k, a, b in diff)
    return (
        f"NOT LIKE WITH LIKE: this run's fingerprint ({ENV}) differs from {whose} ({said}): differences between "
        "those numbers and these come from the machine and packages too, not from the code alone."
    )


def baselines(exp_show: list[dict], envs: dict[str, dict] | None = None) -> tuple[dict[str, dict], int]:
    """Classical-baseline experiments (`model.decoder: none`) of the commit -> evaluate metrics,
    and how many experiments the commit has in all; their fingerprints go to `envs` by name."""
    found, total = {}, 0
    for entry in exp_show:
        for group in entry.get("experiments") or []:
            for rev in group.get("revs") or []:
                total += 1
                data = rev.get("data") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = (data.get("metrics") or {}).get(EVALUATE, {}).get("data")
                if params.get("model", {}).get("decoder") == "none" and metrics:
                    name = rev.get("name") or group.get("name") or rev["rev"][:7]
                    found[name] = metrics
                    env = (data.get("metrics") or {}).get(ENV, {}).get("data")
                    if env is not None and envs is not None:
                        envs[name] = env
    return found, total


def exp_show() -> list[dict] | str:
    """`dvc exp show --json`, or why it is not available."""
    try:
        res = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"dvc exp show failed ({e})"
    if res.returncode:
        return f"dvc exp show failed: {res.stderr.strip()[-200:]}"
    return json.loads(res.stdout or "[]")


def table(columns: dict[str, list[tuple[str, str]]]) -> str:
    names = list(columns)
    lines = ["".ljust(LABEL_W) + "".join(n[: COL_W - 1].rjust(COL_W) for n in names)]
    for i, (label, _) in enumerate(columns[names[0]]):
        lines.append(label.ljust(LABEL_W) + "".join(columns[n][i][1].rjust(COL_W) for n in names))
    return "\n".join(lines)


def survey_lines(path: Path) -> list[str]:
    """Mined hectares per period of the river survey (and the synthetic world's truth), if it ran."""
    if not path.exists():
        return []
    m = json.loads(path.read_text())
    mined, truth = m.get("mined_ha") or {}, m.get("truth_ha") or {}
    head = (
        f"River survey ({path}): {_num(m, 'buffer_km2'):,.0f} km² of buffer in {m.get('chunks')} chunks; mined ha"
        + (" (exact truth of the synthetic world)" if truth else "")
    )
    parts = [
        f"{k.replace('_', '/')}: {v:,.0f}" + (f" ({truth[k]:,.0f})" if k in truth else "") for k, v in mined.items()
    ]
    return [textwrap.fill(head + ": " + "; ".join(parts) + "; data/survey/survey.gpkg", 100, subsequent_indent="  ")]


def summary(
    metrics_path: Path, exps: list[dict] | str, survey_path: Path | None = None, committed: dict | None = None
) -> str:
    """The table; `committed` is the fingerprint committed at git HEAD (metrics/env.json), if any."""
    if not metrics_path.exists():
        return f"{metrics_path} not found: run `make repro` (or `dvc repro`) first"
    m = json.loads(metrics_path.read_text())
    env_path = metrics_path.with_name(Path(ENV).name)
    this_env = json.loads(env_path.read_text()) if env_path.exists() else None
    first = [fingerprint_note(this_env, committed, "the committed one (git HEAD)")]
    columns = {"this run": rows(m), "random": random_rows(m)}
    notes = []
    if isinstance(exps, str):
        notes.append(f"baseline rows: {exps}")
    else:
        envs: dict[str, dict] = {}
        found, total = baselines(exps, envs)
        for name, metrics in sorted(found.items())[:MAX_BASELINES]:
            columns[name] = rows(metrics)
            first.append(fingerprint_note(this_env, envs.get(name), f"baseline row {name}'s"))
        if not found:
            notes.append(
                'baseline rows: none on this commit yet; `SWEEP_ONLY="rf sp-gbm" make sweep` runs the random-forest'
                " and superpixel baselines, then this table shows them"
            )
        if total:
            notes.append(f"{total} experiment(s) on this commit: python scripts/leaderboard.py ranks them all")
    n = m.get("observations")
    head = f"Held-out test clusters, pixels within the river AOI ({metrics_path}{f', {n} observations' if n else ''})"
    rest = (
        f"The rest: dvc metrics show ({len(m)} numbers in evaluate.json alone: per cluster, whole scene, calibration,"
        " exact truth), dvc plots show (PR and reliability curves, overlays), reports/map.html (the map)."
    )
    wrapped = [textwrap.fill(t, 100, subsequent_indent="  ") for t in [*notes, rest]]
    survey = survey_lines(survey_path or metrics_path.with_name(Path(SURVEY).name))
    warnings = [textwrap.fill(t, 100, subsequent_indent="  ") for t in first if t]
    top = [*warnings, ""] if warnings else []
    return "\n".join([*top, textwrap.fill(head, 100), "", table(columns), "", *survey, *wrapped])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", type=Path, default=Path(EVALUATE))
    ap.add_argument("--exp-json", type=Path, help="a saved `dvc exp show --json` instead of running it")
    a = ap.parse_args()
    exps = json.loads(a.exp_json.read_text()) if a.exp_json else exp_show()
    print(summary(a.metrics, exps, committed=committed_env(a.metrics.with_name(Path(ENV).name))))
    sys.exit(0 if a.metrics.exists() else 1)


if __name__ == "__main__":
    main()
