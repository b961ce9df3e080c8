"""Kill `dvc repro` at random moments, again and again; then it must finish and leave nothing broken.

On a tiny world in a temporary copy of this repository: a reference run gives the metrics; then
`dvc repro` is started and its whole process group killed with SIGKILL (no clean-up possible)
after a random delay, `--kills` times, each time from where the last one left off. Finally
`dvc repro` runs to the end; `dvc status` must be clean and every metric (timings aside) equal to
the reference, byte for byte. Prints which stage each kill hit.

    python bench/kill_loop.py [--kills 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandmine.sources.synthetic.catalogue import observations_csv, sites_geojson

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import TINY_SITES as SITES  # noqa: E402 - the tiny world of the pipeline test
from test_pipeline import TINY_PARAMS  # noqa: E402

# the pipeline test's tiny world, with training long enough that kills land between epochs
PARAMS = TINY_PARAMS.replace("epochs: 2, windows_per_epoch: 32", "epochs: 5, windows_per_epoch: 64")
assert PARAMS != TINY_PARAMS, "tests/test_pipeline.py changed its train params: update the replace above"


def _seeded(cycle: int) -> str:
    """The tiny params with the SSL and training seeds moved by `cycle` (0: the reference)."""
    out = PARAMS.replace("queue: 64}", f"queue: 64, seed: {cycle}}}")
    return out.replace("threads: 2}", f"threads: 2, seed: {cycle}}}", 1) if cycle else PARAMS


def _env() -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "k", "GIT_AUTHOR_EMAIL": "k@k",
            "GIT_COMMITTER_NAME": "k", "GIT_COMMITTER_EMAIL": "k@k",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip


def _run(cmd: list[str], cwd: Path) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res.stdout + res.stderr


def make_project(where: Path) -> Path:
    proj = where / "proj"
    proj.mkdir()
    for name in ("stages", "src"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "package-lock.json"):  # the map inlines Leaflet of the lock
        shutil.copy(ROOT / name, proj / name)
    (proj / "data").mkdir()
    (proj / "data" / "sites.geojson").write_text(json.dumps(sites_geojson(SITES)))
    obs = observations_csv([s[0] for s in SITES], ["2025-11-15", "2026-04-10"], {"son_a": ["2026-11-08"]})
    (proj / "data" / "observations.csv").write_text(obs)
    (proj / "params.yaml").write_text(_seeded(0))
    _run(["git", "init", "-q"], proj)
    _run(["dvc", "init", "-q"], proj)
    _run(["git", "add", "-A"], proj)
    _run(["git", "commit", "-qm", "tiny"], proj)
    return proj


def metrics(proj: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((proj / "metrics").glob("*.json")) if p.name != "timing.json"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir, proj = Path(tmp) / "ref", Path(tmp) / "killed"
        ref_dir.mkdir()
        proj.mkdir()
        ref = make_project(ref_dir)
        start = time.perf_counter()
        _run(["dvc", "repro"], ref)
        full = time.perf_counter() - start
        reference = metrics(ref)
        print(f"reference run: {full:.0f} s, {len(reference)} metric files\n")
        work = make_project(proj)
        print("| kill | after s | stage running | finished before the kill |")
        print("|---|---|---|---|")
        hits: dict[str, int] = {}
        cycle, resumes = 0, 0
        k, kills = 0, 0
        while kills < a.kills:  # runs that finish before their kill do not count
            k += 1
            delay = rnd.uniform(2.0, max(4.0, full * 0.6))
            log = open(work / "repro.log", "w")  # noqa: SIM115 - closed below
            proc = subprocess.Popen(["dvc", "repro"], cwd=work, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
            try:
                proc.wait(timeout=delay)
                finished = True
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                finished = False
            log.close()
            text = (work / "repro.log").read_text(errors="ignore")
            stages = re.findall(r"Running stage '([\w-]+)'", text)
            stage = stages[-1] if stages and not finished else ("(done)" if finished else "(starting)")
            hits[stage] = hits.get(stage, 0) + 1
            kills += not finished
            print(f"| {k} | {delay:.1f} | {stage} | {', '.join(stages[:-1]) or '-'} |", flush=True)
            resumes += text.count("resuming after epoch")
            if finished:  # it got to the end: new seeds, so pretrain and on must really run again
                cycle += 1  # (removing outputs would not do: DVC restores them from its run-cache)
                (work / "params.yaml").write_text(_seeded(cycle))
        (work / "params.yaml").write_text(_seeded(0))  # back to the reference params
        start = time.perf_counter()
        out = _run(["dvc", "repro"], work)
        status = _run(["dvc", "status"], work)
        same = metrics(work) == reference
        print(f"\nkills per stage: {json.dumps(hits)}")
        print(f"seed cycles: {cycle + 1}; training resumed after a kill {resumes + out.count('resuming after')} times")
        print(f"final dvc repro (reference params): {time.perf_counter() - start:.0f} s")
        print(f"dvc status: {status.strip().splitlines()[-1]}")
        print(f"metrics equal to the uninterrupted reference, byte for byte: {same}")
        if not same:
            got = metrics(work)
            for name in sorted(set(got) | set(reference)):
                if got.get(name) != reference.get(name):
                    a_, b_ = json.loads(reference.get(name, b"{}")), json.loads(got.get(name, b"{}"))
                    diff = {k: (a_.get(k), b_.get(k)) for k in sorted(set(a_) | set(b_)) if a_.get(k) != b_.get(k)}
                    print(f"  {name}: {json.dumps(diff)[:600]}")
        if not same or "up to date" not in status:
            sys.exit(1)


if __name__ == "__main__":
    main()
