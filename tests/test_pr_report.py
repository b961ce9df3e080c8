"""The pull-request report script on a small repository with a base branch and a change."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
DVC_YAML = """
stages:
  evaluate:
    cmd: python -c "pass"
    params: [model]
    metrics:
      - metrics/env.json: {cache: false}
      - metrics/evaluate.json: {cache: false}
      - metrics/timing.json: {cache: false}
    plots:
      - plots/eval/confusion.png: {cache: false}
      - plots/eval/pr_curve.png: {cache: false}
"""


ENV = {"cpu_pin": "avx2", "aten_capability": "AVX2", "torch": "2.14.1", "train_device": "cpu", "cpu_model": "Xeon"}


def _git(cwd, *args):
    names = {k: "t" for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")}
    mails = {k: "t@t" for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, **names, **mails, "PATH": path, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True)


def _repo(tmp_path, base_env=ENV):
    """A repository whose branch `feature` changes a param, a metric, a timing and a plot of `main`."""
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    (repo / "plots" / "eval").mkdir(parents=True)
    _git(repo, "git", "init", "-q", "-b", "main")
    _git(repo, "dvc", "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("source:\n  kind: synthetic\nmodel:\n  encoder: resnet18\n")
    if base_env is not None:
        (repo / "metrics" / "env.json").write_text(json.dumps(base_env))
    (repo / "metrics" / "evaluate.json").write_text(json.dumps({"aoi_ap": 0.7812, "object_f1": 0.78}))
    (repo / "metrics" / "timing.json").write_text(json.dumps({"train_s": 300.0}))
    (repo / "plots" / "eval" / "confusion.png").write_bytes(b"\x89PNG old")
    (repo / "plots" / "eval" / "pr_curve.png").write_bytes(b"\x89PNG same")
    _git(repo, "git", "add", "-A")
    _git(repo, "git", "commit", "-qm", "base")
    _git(repo, "git", "checkout", "-qb", "feature")
    (repo / "params.yaml").write_text("source:\n  kind: synthetic\nmodel:\n  encoder: resnet50\n")
    (repo / "metrics" / "evaluate.json").write_text(json.dumps({"aoi_ap": 0.7983, "object_f1": 0.78}))
    (repo / "metrics" / "timing.json").write_text(json.dumps({"train_s": 700.0}))
    (repo / "plots" / "eval" / "confusion.png").write_bytes(b"\x89PNG new")
    return repo


def _report(repo, env):
    (repo / "metrics" / "env.json").write_text(json.dumps(env))  # this run's fingerprint
    _git(repo, "git", "add", "-A")
    _git(repo, "git", "commit", "-qm", "change")
    out = _git(repo, sys.executable, str(ROOT / "scripts" / "pr_report.py"), "--base", "main", "--out", "report.md")
    assert "report -> report.md" in out.stdout
    return (repo / "report.md").read_text()


def test_report_shows_metric_param_and_plot_changes(tmp_path):
    repo = _repo(tmp_path)
    _git(repo, "git", "commit", "-qam", "change")
    out = _git(repo, sys.executable, str(ROOT / "scripts" / "pr_report.py"), "--base", "main", "--out", "report.md")
    assert "report -> report.md" in out.stdout
    text = (repo / "report.md").read_text()
    assert "SYNTHETIC DATA" in text
    metrics = text.split("## Metrics")[1].split("## Params")[0]
    assert "aoi_ap" in metrics and "0.7812" in metrics and "0.7983" in metrics
    assert "train_s" not in metrics  # timings are not results
    assert "model.encoder" in text and "resnet50" in text
    assert "![plots/eval/confusion.png](./plots/eval/confusion.png)" in text
    assert "pr_curve.png" not in text  # unchanged plots are left out
    assert "## Timings" in text and "700" in text
    assert "Same fingerprint as `main`" in text and "NOT LIKE WITH LIKE" not in text


def test_another_fingerprint_is_said_first_and_not_presented_as_the_change(tmp_path):
    other = {**ENV, "aten_capability": "AVX512", "cpu_pin": "off", "cpu_model": "EPYC"}
    text = _report(_repo(tmp_path), other)
    head = text.split("SYNTHETIC DATA")[0]  # before the banner and before any number
    assert "NOT LIKE WITH LIKE" in head and "not changes made by this pull request" in head
    assert "| aten_capability | AVX2 | AVX512 |" in head and "| cpu_pin | avx2 | off |" in head
    assert "| cpu_model | Xeon | EPYC |" in head  # unpinned: the CPU decides the bits
    metrics = text.split("## Metrics")[1].split("## Params")[0]
    assert "under another fingerprint than the base" in metrics and "0.7983" in metrics
    assert "aten_capability" not in metrics  # the fingerprint is not a result


def test_only_the_cpu_model_differing_under_the_pin_is_like_with_like(tmp_path):
    text = _report(_repo(tmp_path), {**ENV, "cpu_model": "AMD EPYC 9B14"})
    assert "Same fingerprint as `main`" in text and "NOT LIKE WITH LIKE" not in text


def test_a_base_without_fingerprint_is_said_first(tmp_path):
    text = _report(_repo(tmp_path, base_env=None), ENV)
    assert "FINGERPRINT UNKNOWN" in text.split("SYNTHETIC DATA")[0] and "`main` has no `metrics/env.json`" in text


def test_workflow_runs_the_tests_reproduces_and_comments():
    import yaml

    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "pr.yml").read_text())
    assert "pull_request" in wf[True]  # YAML 1.1 reads the key `on` as True
    steps = wf["jobs"]["reproduce"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert ".ci/run" in script and "dvc repro" in script
    assert "python scripts/pr_report.py --base main --out report.md" in script
    assert "cml comment create report.md" in script
    assert "secrets." not in script  # secrets reach steps through env, never inline in commands
