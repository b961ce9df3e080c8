"""Security: checkpoints load without pickle code, and no secret lives in params or tracked files."""

import ast
import subprocess
from dataclasses import fields, is_dataclass
from pathlib import Path

from sandmine.core.config import Params

ROOT = Path(__file__).parents[1]


def test_every_torch_load_is_weights_only():
    calls = []
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                calls.append((path.name, kw.get("weights_only")))
    assert calls, "no torch.load found: the scan is broken"
    assert all(w == "True" for _, w in calls), calls


def _keys(cls, prefix=""):
    for f in fields(cls):
        sub = f.default_factory if callable(getattr(f, "default_factory", None)) else None
        if sub is not None and is_dataclass(sub):
            yield from _keys(sub, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_params_have_no_place_for_secrets():
    words = ("password", "secret", "token", "api_key", "apikey", "private", "credential")
    bad = [k for k in _keys(Params) if any(w in k.lower() for w in words)]
    assert not bad, f"secrets belong in the environment or .dvc/config.local, not params: {bad}"


def test_no_tracked_file_holds_a_secret():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert ".dvc/config.local" not in files
    patterns = ("-----BEGIN PRIVATE KEY-----", '"private_key": "-----', "LABELBOX_API_KEY=ey")
    hits = []
    for name in files:
        path = ROOT / name
        if path.is_file() and path.stat().st_size < 5_000_000 and path.suffix not in (".png", ".tif", ".jpg"):
            text = path.read_text(errors="ignore")
            hits += [f"{name}: {p}" for p in patterns if p in text and "tests/test_security.py" != name]
    assert not hits, hits
