"""The layers contract (pyproject.toml, `lint-imports` in make lint) holds, and fails on an import against it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the `sandmine` under `root`/src, with the contract of `root`/pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        ROOT / "src" / "sandmine", tmp_path / "src" / "sandmine", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def test_layers_kept_by_the_code():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_layers_broken_by_core_importing_from_above(tmp_path):
    root = _copy(tmp_path)
    raster = root / "src" / "sandmine" / "core" / "raster.py"
    raster.write_text(raster.read_text() + "\nimport sandmine.webmap  # noqa: E402, F401\n")
    out = _lint_imports(root)
    assert out.returncode != 0
    assert "BROKEN" in out.stdout
    assert "sandmine.core.raster -> sandmine.webmap" in out.stdout, out.stdout


def test_layers_name_a_module_in_no_layer(tmp_path):
    root = _copy(tmp_path)
    (root / "src" / "sandmine" / "unplaced.py").write_text('"""A module the contract does not place."""\n')
    out = _lint_imports(root)
    assert out.returncode != 0
    assert "sandmine.unplaced" in out.stdout + out.stderr, out.stdout + out.stderr
