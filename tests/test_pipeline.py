"""End to end: the real stage scripts through `dvc repro` on a tiny world in a temporary copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

TINY_PARAMS = """
source: {kind: synthetic}
bands: [B2, B3, B4, B8, B11, B12, VV, VH, CLOUD]
world: {seed: 1, mine_density: 1.0, cloud_probability: 0.3, haze_probability: 0.5, annotator_miss_ha: 0.4}
gee: {product: L2A}
stac: {window_days: 30}
labels: {source: synthetic}
aoi: {rivers: vector, buffer_m: 1000.0, simplify_m: 250.0}
split: {n_clusters: 3, val_clusters: 1, test_clusters: 1, fold: 0, seed: 0}
model: {encoder: resnet18, decoder: unet, bands: [B2, B3, B4, B8, B11, B12, VV, VH], indices: [NDWI], weights: ssl}
ssl: {method: moco, epochs: 1, windows_per_epoch: 32, window_px: 32, batch_size: 8, queue: 64}
train: {window_px: 64, batch_size: 8, epochs: 2, windows_per_epoch: 32, val_windows: 16, patience: 2, threads: 2,
  device: auto, precision: "32"}
predict: {window_px: 64, stride_px: 32, discard_px: 8, batch_size: 8, blend: gaussian, threshold: null, device: auto,
  precision: "32", threads: 2}
evaluate: {roles: [test]}
infer: {min_area_ha: 0.2}
survey: {rivers: data/surveys/river.geojson, river_field: river, region: "", chunk_km: 2.0, halo_px: 16,
  cache_dir: .survey_cache, periods: [2025-10-01/2025-12-31, 2026-04-01/2026-06-30]}
"""


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and res.returncode:
        raise AssertionError(f"{cmd} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def _invalid_cogs(root: Path) -> tuple[int, list[tuple[str, list[str], list[str]]]]:
    """How many `.tif` lie under `root`, and those rio-cogeo's validator rejects or warns about."""
    from rio_cogeo.cogeo import cog_validate

    paths = sorted(root.rglob("*.tif"))
    checked = [(p, *cog_validate(str(p), quiet=True)) for p in paths]
    return len(paths), [(str(p.relative_to(root)), e, w) for p, ok, e, w in checked if not ok or e or w]


@pytest.fixture
def project(tmp_path: Path, tiny_inputs) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("stages", "src"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # the map inlines Leaflet of package-lock.json; stage env depends on requirements.lock (the packages)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "package-lock.json", "requirements.lock"):
        shutil.copy(ROOT / name, proj / name)
    (proj / "data").mkdir()
    shutil.copy(tiny_inputs[0], proj / "data" / "sites.geojson")
    obs = tiny_inputs[1].read_text() + "son_a_2024-11-18,son_a,2024-11-18,infer\n"  # a time series of 2 dates
    (proj / "data" / "observations.csv").write_text(obs)
    (proj / "params.yaml").write_text(TINY_PARAMS)
    from sandmine.sources.synthetic.catalogue import river_geojson

    (proj / "data" / "surveys").mkdir()
    (proj / "data" / "surveys" / "river.geojson").write_text(json.dumps(river_geojson(6.0)))  # 6 km of the Son
    _run(["git", "init", "-q"], proj)
    _run(["dvc", "init", "-q"], proj)
    _run(["git", "add", "-A"], proj)
    _run(["git", "commit", "-qm", "tiny"], proj)
    return proj


@pytest.mark.slow
def test_dvc_repro_end_to_end_then_nothing_to_do(project: Path):
    _run(["dvc", "repro"], project)
    ev = json.loads((project / "metrics" / "evaluate.json").read_text())
    split = (project / "data" / "split.csv").read_text().splitlines()
    assert ev["observations"] == sum(line.endswith(",test") for line in split) > 0
    assert 0 <= ev["aoi_ap"] <= 1 and ev["aoi_pixels"] > 0
    assert 0 <= ev["truth_aoi_ap"] <= 1  # scored against the exact truth too
    assert len(list((project / "plots" / "world").glob("*.png"))) == 4
    assert 0 <= ev["object_recall"] <= 1 and ev["object_labelled"] > 0
    assert set(ev["clusters"]) == {f"c{r.split(',')[2]}" for r in split if r.endswith(",test")}
    assert (project / "plots" / "eval" / "confusion.png").exists()
    # the operating threshold is chosen on val, stored in the checkpoint, and applied by evaluate and infer
    import torch

    tr = json.loads((project / "metrics" / "train.json").read_text())
    thresholds = torch.load(project / "models" / "model.pt", weights_only=True)["thresholds"]
    assert set(thresholds) == {"best_f1", "area"}
    stored = thresholds["best_f1"]  # predict.operating_point's default
    assert 0 < stored < 1 and stored == pytest.approx(tr["val_threshold_best_f1"], abs=1e-4)
    assert ev["aoi_threshold"] == pytest.approx(stored, abs=1e-4) and 0 <= ev["aoi_ece"] <= 1
    assert (project / "plots" / "eval" / "reliability.csv").read_text().startswith("bin,predicted,observed,pixels")
    inf = json.loads((project / "metrics" / "infer.json").read_text())
    assert inf["observations"] == 2 and inf["sites"] == 1
    assert inf["threshold"] == pytest.approx(stored, abs=1e-3)  # infer.json rounds to 3 digits
    assert (project / "reports" / "map.html").read_text().count("SYNTHETIC DATA") == 1
    infer = project / "data" / "predictions" / "infer"
    for name in ("son_a_2026-11-08.geojson", "son_a_2026-11-08_mask.tif", "son_a_median.tif", "change.csv"):
        assert (infer / name).exists(), name
    assert (infer / "son_a_change_2024-11-18_2026-11-08.geojson").exists()
    series = (infer / "timeseries.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in series[1:]] == ["2024-11-18", "2026-11-08"]
    n_tif, invalid = _invalid_cogs(project / "data")  # images, labels, AOI, truth, probabilities, masks, change
    assert n_tif > 0 and invalid == [], invalid
    sur = json.loads((project / "metrics" / "survey.json").read_text())
    assert sur["chunks"] > 1 and set(sur["mined_ha"]) == set(sur["truth_ha"]) == {
        "2025-10-01_2025-12-31",
        "2026-04-01_2026-06-30",
    }
    import pyogrio

    layers = dict(pyogrio.list_layers(project / "data" / "survey" / "survey.gpkg"))
    assert set(layers) == {"mines", "change", "chunks", "area"}
    assert (project / "reports" / "survey.html").read_text().count("SYNTHETIC DATA") == 1
    assert (project / "dvc.lock").exists()
    first = (project / "metrics" / "evaluate.json").read_bytes()
    again = _run(["dvc", "repro"], project)
    assert "up to date" in again.stdout
    status = _run(["dvc", "status"], project)
    assert "up to date" in status.stdout
    # the whole pipeline run again from scratch reproduces every metric byte for byte
    # (timing.json measures the machine, not the model)
    before = {p.name: p.read_bytes() for p in (project / "metrics").glob("*.json") if p.name != "timing.json"}
    assert {"evaluate.json", "train.json", "infer.json", "pretrain.json", "labels.json", "survey.json"} <= set(before)
    _run(["dvc", "repro", "--force"], project)
    after = {p.name: p.read_bytes() for p in (project / "metrics").glob("*.json") if p.name != "timing.json"}
    assert after == before
    assert (project / "metrics" / "evaluate.json").read_bytes() == first
    pre = json.loads((project / "metrics" / "pretrain.json").read_text())
    assert pre["epochs"] == 1 and pre["loss_first"] > 0
    assert json.loads((project / "metrics" / "timing.json").read_text())["train_s"] > 0


@pytest.mark.slow
def test_a_baseline_is_a_row_of_dvc_exp_show(project: Path):
    _run(["dvc", "repro"], project)
    _run(["git", "add", "-A"], project)
    _run(["git", "commit", "-qm", "ran"], project)
    rf = [
        "-S",
        "model.encoder=random_forest",
        "-S",
        "model.decoder=none",
        "-S",
        "ssl.method=none",
        "-S",
        "model.weights=null",
    ]
    _run(["dvc", "exp", "run", "-n", "rf", *rf], project)
    rows = json.loads(_run(["dvc", "exp", "show", "--json"], project).stdout)
    exps = {e["name"]: e for row in rows for e in (row.get("experiments") or []) for e in e.get("revs", [])}
    rf = exps["rf"]["data"]
    ap = rf["metrics"]["metrics/evaluate.json"]["data"]["aoi_ap"]
    assert 0 <= ap <= 1
    assert rf["params"]["params.yaml"]["data"]["model"]["encoder"] == "random_forest"
    assert (project / "metrics" / "train.json").exists()  # the workspace holds the experiment's results


@pytest.mark.slow
def test_params_typo_stops_the_stage_naming_the_key(project: Path):
    (project / "params.yaml").write_text(TINY_PARAMS.replace("buffer_m: 1000.0", "bufer_m: 1000.0"))
    res = _run(["dvc", "repro", "export"], project, check=False)
    assert res.returncode != 0
    assert "aoi.bufer_m" in res.stderr + res.stdout
    assert not (project / "data" / "images").exists()
