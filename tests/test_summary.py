"""The end of `make repro`: a short table of the first numbers, on fake metrics and a small DVC repository."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "scripts" / "summary.py"
METRICS = {
    "aoi_ap": 0.8012, "aoi_best_f1": 0.7392, "aoi_best_f1_threshold": 0.8706, "aoi_f1": 0.7101,
    "aoi_threshold": 0.6314, "aoi_precision": 0.66, "aoi_recall": 0.77, "area_pred_ha": 750.0,
    "area_label_ha": 500.0, "object_precision": 0.605, "object_recall": 0.9461, "random_ap": 0.0592,
    "observations": 14, "clusters.c3.aoi_ap": 0.7, "scene_ap": 0.5,
}  # fmt: skip
RF = {**METRICS, "aoi_ap": 0.6123, "aoi_best_f1": 0.55}


def _run(*args, cwd=ROOT):
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1"}
    names = {k: "t" for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")}
    mails = {k: "t@t" for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")}
    return subprocess.run(args, cwd=cwd, env={**env, **names, **mails}, capture_output=True, text=True)


def _exp(name, decoder, metrics):
    data = {
        "params": {"params.yaml": {"data": {"model": {"encoder": "x", "decoder": decoder}}}},
        "metrics": {"metrics/evaluate.json": {"data": metrics}},
    }
    return {"revs": [{"rev": "0" * 40, "name": name, "data": data, "experiments": None}], "name": name}


def test_summary_is_short_and_shows_the_first_numbers(tmp_path):
    (tmp_path / "evaluate.json").write_text(json.dumps(METRICS))
    exps = [{"rev": "workspace", "experiments": None},
            {"rev": "a" * 40, "experiments": [_exp("rf", "none", RF), _exp("r18-unet", "unet", METRICS)]}]  # fmt: skip
    (tmp_path / "exp.json").write_text(json.dumps(exps))
    res = _run(sys.executable, str(SCRIPT), "--metrics", str(tmp_path / "evaluate.json"), "--exp-json",
               str(tmp_path / "exp.json"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = res.stdout
    lines = out.splitlines()
    assert len(lines) < 25 and max(map(len, lines)) <= 100  # not one 1000-character line
    header = next(line for line in lines if "this run" in line)
    assert "random" in header and "rf" in header and "r18-unet" not in header  # baselines only
    ap = next(line for line in lines if line.startswith("test AP"))
    assert ap.split()[-3:] == ["0.801", "0.059", "0.612"]
    assert "0.710 @0.63" in out and "750 / 500" in out and "+50 %" in out and "0.60 / 0.95" in out
    assert "0.112" in out  # a random scorer's best F1: 2p / (1 + p)
    assert "2 experiment(s)" in out and "dvc metrics show" in out and "dvc plots show" in out
    assert "River survey" not in out  # no survey.json beside evaluate.json


def test_the_river_survey_gets_one_line(tmp_path):
    (tmp_path / "evaluate.json").write_text(json.dumps(METRICS))
    survey = {"buffer_km2": 245.8, "chunks": 47, "mined_ha": {"2025-10-01_2025-12-31": 1075.2},
              "truth_ha": {"2025-10-01_2025-12-31": 841.6}}  # fmt: skip
    (tmp_path / "survey.json").write_text(json.dumps(survey))
    (tmp_path / "exp.json").write_text("[]")
    res = _run(sys.executable, str(SCRIPT), "--metrics", str(tmp_path / "evaluate.json"), "--exp-json",
               str(tmp_path / "exp.json"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())  # lines wrap at 100 characters
    assert "246 km² of buffer in 47 chunks" in out and "2025-10-01/2025-12-31: 1,075 (842)" in out


def test_missing_keys_and_no_experiments_say_what_to_run(tmp_path):
    (tmp_path / "evaluate.json").write_text(json.dumps({"aoi_ap": 0.5}))
    (tmp_path / "exp.json").write_text("[]")
    res = _run(sys.executable, str(SCRIPT), "--metrics", str(tmp_path / "evaluate.json"), "--exp-json",
               str(tmp_path / "exp.json"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "0.500" in res.stdout and "make sweep" in res.stdout
    res = _run(sys.executable, str(SCRIPT), "--metrics", str(tmp_path / "none.json"))
    assert res.returncode == 1 and "make repro" in res.stdout


def test_baselines_come_from_dvc_exp_show(tmp_path):
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        assert _run(*cmd, cwd=repo).returncode == 0
    (repo / "dvc.yaml").write_text("metrics:\n  - metrics/evaluate.json\nparams:\n  - params.yaml\n")
    (repo / "params.yaml").write_text("model:\n  encoder: resnet18\n  decoder: unet\n")
    (repo / "metrics" / "evaluate.json").write_text(json.dumps(METRICS))
    assert _run("git", "add", "-A", cwd=repo).returncode == 0
    assert _run("git", "commit", "-qm", "base", cwd=repo).returncode == 0
    (repo / "params.yaml").write_text("model:\n  encoder: random_forest\n  decoder: none\n")
    (repo / "metrics" / "evaluate.json").write_text(json.dumps(RF))
    res = _run("dvc", "exp", "save", "-q", "-n", "rf", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert _run("git", "checkout", "-q", "--", ".", cwd=repo).returncode == 0
    res = _run(sys.executable, str(SCRIPT), cwd=repo)
    assert res.returncode == 0, res.stderr
    ap = next(line for line in res.stdout.splitlines() if line.startswith("test AP"))
    assert ap.split()[-3:] == ["0.801", "0.059", "0.612"], res.stdout


ENV = {"cpu_pin": "avx2", "aten_capability": "AVX2", "torch": "2.14.1", "train_device": "cpu", "cpu_model": "Xeon"}


def _committed(tmp_path, this_env):
    """A git repository whose committed metrics/env.json is ENV and whose workspace has `this_env`."""
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    (repo / "metrics" / "evaluate.json").write_text(json.dumps(METRICS))
    (repo / "metrics" / "env.json").write_text(json.dumps(ENV))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        assert _run(*cmd, cwd=repo).returncode == 0
    (repo / "metrics" / "env.json").write_text(json.dumps(this_env))
    (tmp_path / "exp.json").write_text("[]")
    res = _run(sys.executable, str(SCRIPT), "--metrics", "metrics/evaluate.json", "--exp-json",
               str(tmp_path / "exp.json"), cwd=repo)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_another_fingerprint_than_the_committed_one_is_said_first(tmp_path):
    out = _committed(tmp_path, {**ENV, "torch": "2.15.0", "aten_capability": "AVX512", "cpu_pin": "off"})
    first = " ".join(out.split("Held-out test clusters")[0].split())  # lines wrap at 100 characters
    assert first.startswith("NOT LIKE WITH LIKE") and "the committed one (git HEAD)" in first
    flat = first
    assert "torch 2.14.1 -> 2.15.0" in flat and "aten_capability AVX2 -> AVX512" in flat and "not from the code" in flat


def test_the_same_fingerprint_on_another_cpu_says_nothing(tmp_path):
    out = _committed(tmp_path, {**ENV, "cpu_model": "AMD EPYC"})  # pinned: the CPU model decides no bit
    assert "NOT LIKE WITH LIKE" not in out and out.startswith("Held-out test clusters")


def test_a_baseline_row_under_another_fingerprint_is_marked(tmp_path):
    (tmp_path / "evaluate.json").write_text(json.dumps(METRICS))
    (tmp_path / "env.json").write_text(json.dumps(ENV))
    rf = _exp("rf", "none", RF)
    rf["revs"][0]["data"]["metrics"]["metrics/env.json"] = {"data": {**ENV, "torch": "2.13.0"}}
    (tmp_path / "exp.json").write_text(json.dumps([{"rev": "a" * 40, "experiments": [rf]}]))
    res = _run(sys.executable, str(SCRIPT), "--metrics", str(tmp_path / "evaluate.json"), "--exp-json",
               str(tmp_path / "exp.json"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    first = " ".join(res.stdout.split("Held-out test clusters")[0].split())
    assert "baseline row rf's" in first and "torch 2.13.0 -> 2.14.1" in first
