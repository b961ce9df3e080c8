"""Print the experiments of the current commit as a Markdown table sorted by test AP.

`dvc exp show --md` with the columns that matter: how the model was built, the held-out scores,
and training time. Usage: python scripts/leaderboard.py [--all-commits]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

KEEP = [
    r"Experiment",
    r"model\.encoder",
    r"model\.decoder",
    r"model\.weights",
    r"model\.finetune",
    r"model\.indices",
    r"ssl\.method",
    r"^aoi_ap$",
    r"^aoi_best_f1$",
    r"^aoi_f1$",
    r"^aoi_threshold$",
    r"^aoi_f1_at_0\.5$",
    r"^area_pred_ha$",
    r"^area_label_ha$",
    r"^object_f1$",
    r"^train_s$",
    r"^epoch_s$",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--all-commits", action="store_true")
    a = ap.parse_args()
    cmd = [
        "dvc",
        "exp",
        "show",
        "--md",
        "--no-pager",
        "--drop",
        ".*",
        "--keep",
        "|".join(f"({k})" for k in KEEP),
        "--sort-by",
        "metrics/evaluate.json:aoi_ap",
        "--sort-order",
        "desc",
    ]
    if a.all_commits:
        cmd.append("--all-commits")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"dvc exp show failed: {res.stderr.strip()}")
    print(res.stdout)


if __name__ == "__main__":
    main()
