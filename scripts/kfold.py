"""k-fold cross-validation over the geographic clusters: queue one experiment per fold, then mean ± sd.

    python scripts/kfold.py queue r18-unet                      # folds 0 … n_clusters-1 of the params as they are
    python scripts/kfold.py queue rf -S model.encoder=random_forest -S model.decoder=none
    dvc queue start -j 1                                         # run them (make kfold does all of it)
    python scripts/kfold.py show [--exp-json saved.json]         # mean ± sd per model over its folds

`split.fold` rotates which clusters are held out (fold f tests cluster f), so over n_clusters folds every
cluster is the test set once. Experiments are named NAME-fold<f>; `show` groups them by NAME.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

EVALUATE = "metrics/evaluate.json"
# (column, how to get it from evaluate.json)
COLUMNS = [
    ("AP", lambda m: m["aoi_ap"]),
    ("best F1", lambda m: m["aoi_best_f1"]),
    ("F1 @op", lambda m: m["aoi_f1"]),
    ("area err %", lambda m: 100 * m["area_error_ha"] / m["area_label_ha"] if m.get("area_label_ha") else None),
    ("object P", lambda m: m["object_precision"]),
    ("object R", lambda m: m["object_recall"]),
]
NAME = re.compile(r"(?P<model>.+)-fold(?P<fold>\d+)$")


def folds(exp_show: list[dict]) -> dict[str, dict[int, dict]]:
    """`dvc exp show --json` → model name → fold → evaluate metrics, for experiments named NAME-fold<f>."""
    out: dict[str, dict[int, dict]] = {}
    for entry in exp_show:
        for group in entry.get("experiments") or []:
            for rev in group.get("revs") or []:
                m = NAME.match(rev.get("name") or group.get("name") or "")
                metrics = ((rev.get("data") or {}).get("metrics") or {}).get(EVALUATE, {}).get("data")
                if m and metrics:
                    out.setdefault(m["model"], {})[int(m["fold"])] = metrics
    return out


def table(by_model: dict[str, dict[int, dict]]) -> str:
    """Markdown: one row per model, mean ± sd (sample) of each column over its folds."""
    lines = ["| model | folds | " + " | ".join(c for c, _ in COLUMNS) + " |", "|---|---" + "|---" * len(COLUMNS) + "|"]
    for model, by_fold in sorted(by_model.items()):
        cells = []
        for _, get in COLUMNS:
            values = [v for v in (get(m) for m in by_fold.values()) if v is not None]
            if not values:
                cells.append("–")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}")
            else:
                cells.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}")
        lines.append(f"| {model} | {','.join(map(str, sorted(by_fold)))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def commands(name: str, sets: list[str], n_folds: int) -> list[list[str]]:
    """The `dvc exp run --queue` command of every fold: up to evaluate (infer and survey are for one model)."""
    extra = [x for s in sets for x in ("-S", s)]
    return [
        ["dvc", "exp", "run", "--queue", "-n", f"{name}-fold{f}", "-S", f"split.fold={f}", *extra, "evaluate"]
        for f in range(n_folds)
    ]


def queue(name: str, sets: list[str], params: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sandmine.core.config import load_params

    for cmd in commands(name, sets, load_params(params).split.n_clusters):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"error: {' '.join(cmd)} failed: {res.stderr.strip()}")
        print(" ".join(cmd))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    q = sub.add_parser("queue", help="queue one experiment per fold")
    q.add_argument("name", help="the model's name in the table (experiments are NAME-fold<f>)")
    q.add_argument("-S", dest="sets", action="append", default=[], help="params override, as dvc exp run -S")
    q.add_argument("--params", type=Path, default=Path("params.yaml"))
    s = sub.add_parser("show", help="mean ± sd over the folds of each queued model")
    s.add_argument("--exp-json", type=Path, help="a saved `dvc exp show --json` instead of running it")
    a = ap.parse_args()
    if a.command == "queue":
        queue(a.name, a.sets, a.params)
        return
    if a.exp_json:
        exps = json.loads(a.exp_json.read_text())
    else:
        res = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"error: dvc exp show failed: {res.stderr.strip()}")
        exps = json.loads(res.stdout or "[]")
    by_model = folds(exps)
    if not by_model:
        sys.exit("error: no experiment named NAME-fold<f> in this commit: queue them with `kfold.py queue NAME`")
    print(table(by_model))


if __name__ == "__main__":
    main()
