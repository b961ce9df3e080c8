"""scripts/kfold.py: folds grouped by model, mean ± sd per metric, the queue commands."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "scripts" / "kfold.py"


def _module():
    spec = importlib.util.spec_from_file_location("kfold", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metrics(ap, f1=0.7, area_error=50.0, label=500.0):
    return {"aoi_ap": ap, "aoi_best_f1": f1 + 0.01, "aoi_f1": f1, "area_error_ha": area_error,
            "area_label_ha": label, "object_precision": 0.6, "object_recall": 0.9}  # fmt: skip


def _exp(name, metrics):
    data = {"metrics": {"metrics/evaluate.json": {"data": metrics}}}
    return {"revs": [{"rev": "0" * 40, "name": name, "data": data}], "name": name}


EXPS = [
    {"rev": "workspace", "experiments": None},
    {
        "rev": "a" * 40,
        "experiments": [
            _exp("r18-fold0", _metrics(0.80)),
            _exp("r18-fold1", _metrics(0.70, area_error=-50.0)),
            _exp("r18-fold2", _metrics(0.90)),
            _exp("rf-fold0", _metrics(0.5)),
            _exp("sweep-row", _metrics(0.99)),  # not a fold: left out
        ],
    },
]


def test_folds_groups_experiments_by_model():
    by_model = _module().folds(EXPS)
    assert sorted(by_model) == ["r18", "rf"] and sorted(by_model["r18"]) == [0, 1, 2]


def test_table_gives_mean_and_sample_sd():
    out = _module().table(_module().folds(EXPS))
    r18 = next(line for line in out.splitlines() if line.startswith("| r18 "))
    assert "| 0,1,2 |" in r18
    assert "0.800 ± 0.100" in r18  # AP: mean of 0.8, 0.7, 0.9; sample sd 0.1
    assert "3.333 ± 11.547" in r18  # area error %: +10, -10, +10
    rf = next(line for line in out.splitlines() if line.startswith("| rf "))
    assert "| 0.500 |" in rf  # one fold: no spread to give


def test_commands_rotate_every_fold_and_pass_overrides():
    cmds = _module().commands("rf", ["model.encoder=random_forest"], 3)
    assert [c[c.index("-n") + 1] for c in cmds] == ["rf-fold0", "rf-fold1", "rf-fold2"]
    assert all(f"split.fold={i}" in c and "model.encoder=random_forest" in c for i, c in enumerate(cmds))
    assert all(c[-1] == "evaluate" and c[:4] == ["dvc", "exp", "run", "--queue"] for c in cmds)


def test_show_without_folds_says_how_to_make_them(tmp_path):
    (tmp_path / "exp.json").write_text(json.dumps([{"rev": "workspace", "experiments": None}]))
    res = subprocess.run([sys.executable, str(SCRIPT), "show", "--exp-json", str(tmp_path / "exp.json")],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 1 and "kfold.py queue" in res.stderr
