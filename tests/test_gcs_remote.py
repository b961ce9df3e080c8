"""A real DVC remote on Google Cloud Storage, against a GCS emulator on 127.0.0.1: dvc push from
one clone, dvc pull and dvc repro --pull in fresh clones (through dvc-gs and gcsfs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BUCKET = "sandmine-test"
DVC_YAML = """stages:
  double:
    cmd: python double.py
    deps: [double.py, data/in.txt]
    outs: [data/out.txt]
"""
DOUBLE = "from pathlib import Path\n\nPath('data/out.txt').write_text(Path('data/in.txt').read_text() * 2)\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _run(cmd: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # else gcsfs probes over gRPC and waits 60 s per call
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def _point_at_emulator(repo: Path, endpoint: str) -> None:
    # the endpoint and anonymous login are per machine: .dvc/config.local, never committed
    _run(["dvc", "remote", "modify", "--local", "gcs", "endpointurl", endpoint], repo)
    _run(["dvc", "remote", "modify", "--local", "gcs", "allow_anonymous_login", "true"], repo)


def test_push_pull_and_repro_pull_round_trip(tmp_path, emulator):
    origin = tmp_path / "origin"
    (origin / "data").mkdir(parents=True)
    (origin / "data" / "in.txt").write_text("sand\n")
    (origin / "double.py").write_text(DOUBLE)
    (origin / "dvc.yaml").write_text(DVC_YAML)
    _run(["git", "init", "-q"], origin)
    _run(["dvc", "init", "-q"], origin)
    _run(["dvc", "add", "-q", "data/in.txt"], origin)
    _run(["dvc", "remote", "add", "-d", "gcs", f"gs://{BUCKET}/cache"], origin)
    _point_at_emulator(origin, emulator)
    _run(["dvc", "repro"], origin)
    _run(["git", "add", "-A"], origin)
    _run(["git", "commit", "-qm", "tiny pipeline"], origin)
    assert "config.local" not in _run(["git", "ls-files", ".dvc"], origin)
    pushed = _run(["dvc", "push"], origin)
    assert "2 files pushed" in pushed

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator}
    )
    assert len(list(client.list_blobs(BUCKET, prefix="cache/"))) == 2  # in.txt and out.txt, content-addressed

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    _point_at_emulator(clone, emulator)
    _run(["dvc", "pull"], clone)
    assert (clone / "data" / "out.txt").read_text() == "sand\nsand\n"

    again = tmp_path / "again"
    _run(["git", "clone", "-q", str(origin), str(again)], tmp_path)
    _point_at_emulator(again, emulator)
    out = _run(["dvc", "repro", "--pull"], again)
    assert "Running stage" not in out  # restored from the remote, not recomputed
    assert (again / "data" / "out.txt").read_text() == "sand\nsand\n"


EXP_YAML = """stages:
  scale:
    cmd: python scale.py
    deps: [scale.py, data/in.txt]
    params: [factor]
    outs: [data/out.txt]
    metrics:
      - metrics.json: {cache: false}
"""
SCALE = (
    "import json\nfrom pathlib import Path\n\nimport yaml\n\n"
    "k = yaml.safe_load(Path('params.yaml').read_text())['factor']\n"
    "Path('data/out.txt').write_text(Path('data/in.txt').read_text() * k)\n"
    "Path('metrics.json').write_text(json.dumps({'lines': k}))\n"
)


def test_experiments_travel_through_git_and_the_gcs_remote(tmp_path, emulator):
    """`dvc exp push` from one clone, `dvc exp pull` in another: the experiment's row and its
    outputs arrive without running anything (git refs via a bare repo, data via the emulator)."""
    hub = tmp_path / "hub.git"
    _run(["git", "init", "-q", "--bare", str(hub)], tmp_path)
    origin = tmp_path / "origin"
    (origin / "data").mkdir(parents=True)
    (origin / "data" / "in.txt").write_text("sand\n")
    (origin / "scale.py").write_text(SCALE)
    (origin / "dvc.yaml").write_text(EXP_YAML)
    (origin / "params.yaml").write_text("factor: 2\n")
    _run(["git", "init", "-q", "-b", "main"], origin)
    _run(["dvc", "init", "-q"], origin)
    _run(["dvc", "add", "-q", "data/in.txt"], origin)
    _run(["dvc", "remote", "add", "-d", "gcs", f"gs://{BUCKET}/exps"], origin)
    _point_at_emulator(origin, emulator)
    _run(["dvc", "repro"], origin)
    _run(["git", "add", "-A"], origin)
    _run(["git", "commit", "-qm", "base"], origin)
    _run(["git", "remote", "add", "origin", str(hub)], origin)
    _run(["git", "push", "-q", "origin", "main"], origin)
    _run(["dvc", "push"], origin)
    _run(["dvc", "exp", "run", "-n", "triple", "-S", "factor=3"], origin)
    _run(["dvc", "exp", "push", "origin", "triple"], origin)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", "-b", "main", str(hub), str(clone)], tmp_path)
    _point_at_emulator(clone, emulator)
    assert "triple" in _run(["dvc", "exp", "list", "origin"], clone)
    _run(["dvc", "exp", "pull", "origin", "triple"], clone)
    shown = _run(["dvc", "exp", "show", "--md"], clone)
    assert "triple" in shown and "| 3" in shown.replace("  ", " ")
    _run(["dvc", "exp", "apply", "triple"], clone)
    _run(["dvc", "checkout"], clone)
    assert (clone / "data" / "out.txt").read_text() == "sand\n" * 3  # from the remote, not recomputed
    assert "Running stage" not in _run(["dvc", "repro"], clone)
