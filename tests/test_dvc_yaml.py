"""dvc.yaml and params.yaml stay true to the code, so DVC re-runs a stage whenever its code changes."""

from __future__ import annotations

import ast
from dataclasses import fields, is_dataclass
from pathlib import Path

import yaml

from sandmine.core.config import Params

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src"
# modules that only parse params or report errors: they cannot change an output, because
# params.yaml spells out every key (test below), so no default of config.py reaches a stage
EXEMPT = {"sandmine/core/config.py", "sandmine/cli.py", "sandmine/core/errors.py"}


def _module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """sandmine modules imported anywhere in a file (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sandmine")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sandmine"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
    return found


def required_files(script: Path) -> set[str]:
    """Source files (relative to src/) that a stage script runs, transitively."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in _imports(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a module and the packages above it
                f = _module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    out = set()
    for f in seen:
        rel = f.relative_to(SRC).as_posix()
        trivial = f.name == "__init__.py" and "import" not in f.read_text() and "def " not in f.read_text()
        if rel not in EXEMPT and not trivial:
            out.add(rel)
    return out


def test_every_stage_depends_on_the_code_it_runs():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing, extra = {}, {}
    for name, stage in stages.items():
        script = next(w for w in stage["cmd"].split() if w.startswith("stages/"))
        deps = [d.rstrip("/") for d in stage["deps"]]
        assert script in deps, f"stage {name} does not depend on its script {script}"
        need = required_files(ROOT / script)
        lacking = sorted(f for f in need if not any(f"src/{f}" == d or f"src/{f}".startswith(d + "/") for d in deps))
        if lacking:
            missing[name] = lacking
        unused = [
            d
            for d in deps
            if d.startswith("src/") and not any(f"src/{f}" == d or f"src/{f}".startswith(d + "/") for f in need)
        ]
        if unused:
            extra[name] = unused
    assert not missing, f"dvc.yaml deps lack code the stages run: {missing}"
    assert not extra, f"dvc.yaml deps name code the stages do not run (needless re-runs): {extra}"


def _keys(cls: type, prefix: str = "") -> set[str]:
    out = set()
    for f in fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(default):
            out |= _keys(type(default), f"{prefix}{f.name}.")
        else:
            out.add(f"{prefix}{f.name}")
    return out


def _yaml_keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out |= _yaml_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def test_params_yaml_spells_out_every_key():
    given = _yaml_keys(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert given == _keys(Params), f"missing: {_keys(Params) - given}; unknown: {given - _keys(Params)}"


def test_every_stage_runs_under_the_fingerprint_of_stage_env():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    env = stages.pop("env")
    assert env["metrics"] == [{"metrics/env.json": {"cache": False, "persist": True}}]
    for name, stage in stages.items():
        assert "metrics/env.json" in stage["deps"], f"stage {name} does not depend on the fingerprint"
        assert "--env metrics/env.json" in stage["cmd"], f"stage {name} does not check the fingerprint"
