"""Output folders, output locks, unique temporary names and write faults (`sandmine.core.files`)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from sandmine.core.errors import SandmineError
from sandmine.core.files import OWNED, check_outputs, claim_dir, fresh_dir, output_lock
from sandmine.core.raster import CogWriter, Grid, write_cog

GRID = Grid(CRS.from_epsg(32644), Affine(10, 0, 500000, 0, -10, 2750000), 512, 512)


def _user_folder(path: Path) -> list[Path]:
    """A folder of someone's own files, a git repository among them; returns every file."""
    (path / ".git" / "objects").mkdir(parents=True)
    files = [path / ".git" / "HEAD", path / ".git" / "objects" / "ab", path / "notes.txt", path / "model.pt"]
    for f in files:
        f.write_text(f.name)
    return files


def test_fresh_dir_refuses_a_folder_it_did_not_make(tmp_path):
    files = _user_folder(tmp_path / "mine")
    with pytest.raises(SandmineError, match=r"holds files that sandmine did not write \(.git, model.pt, notes.txt\)"):
        fresh_dir(tmp_path / "mine")
    assert all(f.read_text() == f.name for f in files)


def test_fresh_dir_empties_only_its_own_folder_and_keeps_the_marker(tmp_path):
    out = fresh_dir(tmp_path / "out")  # new: made and marked
    (out / "a" / "b").mkdir(parents=True)
    (out / "a" / "b" / "x.tif").write_text("old")
    assert fresh_dir(out) == out and [p.name for p in out.iterdir()] == [OWNED]  # second run: ours, emptied
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (fresh_dir(empty) / OWNED).exists()  # an empty folder a user made is fine


def test_claim_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SandmineError, match="is a file, not a folder"):
        claim_dir(tmp_path / "f", "--out")


def _holder(path: Path, release: Path) -> subprocess.Popen:
    """Another process that holds the output lock of `path` until `release` exists."""
    code = (
        "import sys, time; from pathlib import Path; from sandmine.core.files import output_lock\n"
        "with output_lock(sys.argv[1]):\n"
        "    print('locked', flush=True)\n"
        "    while not Path(sys.argv[2]).exists(): time.sleep(0.05)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(release)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@contextlib.contextmanager
def _held(path: Path, tmp_path: Path) -> Iterator[subprocess.Popen]:
    proc = _holder(path, tmp_path / "release")
    try:
        yield proc
    finally:
        (tmp_path / "release").touch()
        proc.wait(timeout=30)


def test_output_lock_turns_a_second_process_away_with_its_pid(tmp_path):
    out = tmp_path / "pred.tif"
    with _held(out, tmp_path) as proc:
        with pytest.raises(SandmineError, match=rf"another run is writing .*pred.tif \(pid {proc.pid}\)"):
            with output_lock(out):
                pass
    assert proc.returncode == 0
    with output_lock(out):  # free again once the holder is done, and re-entrant in one process
        with output_lock(out):
            pass
    assert not list(tmp_path.glob(".*.lock"))  # removed on release


def _checkpoint_and_scene(tmp_path: Path) -> tuple[Path, Path]:
    import torch

    from sandmine import models

    bands = ["B2", "B3", "B4"]
    torch.manual_seed(0)
    meta = {"encoder": "resnet18", "decoder": "linear", "bands": bands, "mean": [0.0] * 3, "std": [1.0] * 3}
    torch.save(models.save_checkpoint(models.build("resnet18", "linear", bands), meta), tmp_path / "model.pt")
    g = Grid(GRID.crs, GRID.transform, 96, 96)
    data = np.random.default_rng(0).uniform(0, 0.3, (3, 96, 96)).astype(np.float32)
    write_cog(tmp_path / "scene.tif", data, g, bands)
    return tmp_path / "model.pt", tmp_path / "scene.tif"


def test_two_predict_processes_on_one_output(tmp_path):
    """While one run writes pred.tif, a second `sandmine predict` onto it stops at once with the first's pid;
    pred.tif is then written whole by a run of its own."""
    model, scene = _checkpoint_and_scene(tmp_path)
    out = tmp_path / "pred.tif"
    cmd = [sys.executable, "-m", "sandmine", "predict", str(scene), "--model", str(model), "--out", str(out),
           "--window", "64", "--stride", "48", "--discard", "8"]  # fmt: skip
    with _held(out, tmp_path) as proc:
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"another run is writing {out} (pid {proc.pid})" in second.stderr
        assert not out.exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with rasterio.open(out) as ds:
        assert ds.read(1).any()
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".*.lock"))


def test_two_cog_writers_of_one_path_do_not_share_a_temporary_file(tmp_path):
    """The streaming writer's rows file is unique per writer: interleaved writers each end whole
    (before, both wrote `.tmp-pred.tif.rows.tif` and the first renamed the second's zeros)."""
    a, b = (CogWriter(tmp_path / "pred.tif", GRID, "uint8", "mine_probability") for _ in range(2))
    assert a._tmp != b._tmp and a._tmp.parent == tmp_path
    a.write_rows(0, np.full((512, 512), 7, np.uint8))
    b.write_rows(0, np.full((512, 512), 9, np.uint8))
    a.close()
    with rasterio.open(tmp_path / "pred.tif") as ds:
        assert (ds.read(1) == 7).all()
    b.close()
    with rasterio.open(tmp_path / "pred.tif") as ds:
        assert (ds.read(1) == 9).all()
    assert not list(tmp_path.glob(".tmp-*"))


@contextlib.contextmanager
def _mounted(path: Path, *options: str) -> Iterator[None]:
    """A tmpfs at `path` (root and mount(8) allowed, else the test is skipped)."""
    path.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_full_disk_is_named_with_its_free_space(tmp_path):
    """A real 1 MiB tmpfs filled by an incompressible COG: a SandmineError, no temporary file left."""
    disk = tmp_path / "disk"
    with _mounted(disk, "size=1m"):
        noise = np.random.default_rng(0).integers(0, 255, (1024, 1024), dtype=np.uint8)
        with pytest.raises(SandmineError) as err:
            write_cog(disk / "big.tif", noise, Grid(GRID.crs, GRID.transform, 1024, 1024), ["noise"])
        assert "the disk is full while writing it" in str(err.value) and "free now" in str(err.value)
        assert "big.tif" in str(err.value)
        with pytest.raises(SandmineError) as err:
            with CogWriter(disk / "rows.tif", Grid(GRID.crs, GRID.transform, 1024, 1024), "uint8", "noise") as out:
                out.write_rows(0, noise)
        assert "the disk is full while writing it" in str(err.value) and "rows.tif" in str(err.value)
        assert not list(disk.iterdir())
        with pytest.raises(SandmineError, match=r"--out needs about 1.0 GiB and the disk has .* free"):
            check_outputs({}, {"--out": disk / "p.tif"}, sizes={"--out": 2**30})


def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    """A real read-only mount (root writes through permission bits, not through a read-only mount)."""
    ro = tmp_path / "ro"
    with _mounted(ro, "size=1m", "ro"):
        with pytest.raises(SandmineError, match=r"--out cannot be written: .* \(Read-only file system\)"):
            check_outputs({}, {"--out": ro / "sub" / "p.tif"})


def test_survey_cli_out_on_a_folder_of_other_files_keeps_every_file(tmp_path, monkeypatch, capsys):
    """`sandmine survey --out FOLDER` on a folder holding someone's files and a `.git`: refused before any
    export or prediction, every file still there; `--out .` run there too."""
    import sandmine.core.config as config
    from sandmine.__main__ import main
    from sandmine.core.config import Params

    folder = tmp_path / "project"
    files = _user_folder(folder)
    (folder / "rivers.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    files.append(folder / "rivers.geojson")
    p = Params()
    p.survey.rivers, p.survey.cache_dir = str(folder / "rivers.geojson"), str(tmp_path / "cache")
    monkeypatch.setattr(config, "load_params", lambda path: p)
    report, metrics = str(tmp_path / "s.html"), str(tmp_path / "s.json")
    model = str(tmp_path / "model.pt")
    for out, where in ((str(folder), tmp_path), (".", folder)):
        monkeypatch.chdir(where)
        with pytest.raises(SystemExit) as exit_:
            main(["survey", "--model", model, "--out", out, "--report", report, "--metrics", metrics])
        err = capsys.readouterr().err
        assert exit_.value.code == 1 and "Traceback" not in err
        assert "lies inside --out" in err or "holds files that sandmine did not write" in err
        assert sorted(folder.rglob("*")) == sorted({*files, folder / ".git", folder / ".git" / "objects"})
        assert all(f.read_text() == f.name for f in files[:-1])
        assert not (tmp_path / "cache").exists()  # nothing exported or predicted
    p.survey.rivers = str(tmp_path / "rivers.geojson")  # rivers elsewhere: the folder alone is refused
    (folder / "rivers.geojson").rename(tmp_path / "rivers.geojson")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["survey", "--model", model, "--out", str(folder), "--report", report, "--metrics", metrics])
    assert "holds files that sandmine did not write (.git, model.pt, notes.txt)" in capsys.readouterr().err
    assert all(f.read_text() == f.name for f in files[:-1])


def test_output_lock_file_is_beside_the_output(tmp_path):
    with output_lock(tmp_path / "a" / "pred.tif"):
        assert (tmp_path / "a" / ".pred.tif.lock").read_text().strip().isdigit()
    assert not (tmp_path / "a" / ".pred.tif.lock").exists()
