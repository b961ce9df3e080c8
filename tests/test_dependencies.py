"""Every third-party import is declared in pyproject.toml and pinned in the lock its group belongs to."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# import name -> distribution, for when the distribution is not installed (bench extras in the base env)
KNOWN = {"PIL": "pillow", "sklearn": "scikit-learn", "ee": "earthengine-api", "yaml": "pyyaml"}
# what each folder may import: runtime code only the dependencies, tests and scripts also dev, benches also bench
GROUPS = {
    "src": ["runtime"],
    "stages": ["runtime"],
    "tests": ["runtime", "dev"],
    "scripts": ["runtime", "dev"],
    "bench": ["runtime", "dev", "bench"],
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(specs: list[str]) -> set[str]:
    return {_norm(re.match(r"[A-Za-z0-9_.-]+", s).group(0)) for s in specs}  # type: ignore[union-attr]


def declared(group: str) -> set[str]:
    if group == "runtime":
        return _names(PROJECT["dependencies"])
    return _names(PROJECT["optional-dependencies"][group])


def pins(lock: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / lock).read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            out[_norm(name)] = version.strip()
    return out


def third_party_imports(folder: Path, local: set[str] | None = None) -> dict[str, str]:
    """Modules imported anywhere in `folder` (functions included) that are neither the standard
    library, sandmine, nor one of the repository's own files (`local`: module names) -> first
    file importing it. `from a.b import c` gives `a.b.c` (c may be a name, not a module)."""
    local = {p.stem for p in folder.rglob("*.py")} if local is None else local
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "sandmine" and top not in local:
                    found.setdefault(name, path.relative_to(folder.parent).as_posix())
    return found


def distribution(module: str) -> str:
    """The distribution that installs dotted `module` (the deepest match within namespace packages)."""
    parts = module.split(".")
    dists = md.packages_distributions().get(parts[0], [])
    if len(dists) > 1:  # a namespace package (google.auth, google.cloud.storage, ...)
        for n in range(len(parts), 1, -1):
            prefix = "/".join(parts[:n])
            hits = [
                d
                for d in dists
                if any(
                    f.as_posix().startswith(prefix + "/") or f.as_posix() == prefix + ".py" for f in md.files(d) or []
                )
            ]
            if len(hits) == 1:
                return _norm(hits[0])
    return _norm(dists[0] if dists else KNOWN.get(parts[0], parts[0]))


def test_every_import_is_declared():
    own = {p.stem for folder in GROUPS for p in (ROOT / folder).rglob("*.py")}  # bench imports tests' helpers
    missing: dict[str, str] = {}
    for folder, groups in GROUPS.items():
        allowed = set().union(*(declared(g) for g in groups))
        for module, where in sorted(third_party_imports(ROOT / folder, own).items()):
            dist = distribution(module)
            if dist not in allowed:
                missing.setdefault(dist, f"{where} imports {module}, {dist} is not in {'+'.join(groups)}")
    assert not missing, "declare in pyproject.toml and pin in the lock: " + "; ".join(missing.values())


def test_every_declared_dependency_is_pinned_in_its_lock():
    base, bench = pins("requirements.lock"), pins("requirements-bench.lock")
    unpinned = sorted((declared("runtime") | declared("dev")) - set(base))
    assert not unpinned, f"requirements.lock lacks {unpinned}: make lock"
    assert declared("bench") <= set(bench), f"requirements-bench.lock lacks {sorted(declared('bench') - set(bench))}"
    # make repro / make test install the base lock only: the bench stack stays out of it
    assert not declared("bench") & set(base)
    assert not {"lightning", "pytorch-lightning", "torchmetrics"} & set(base)
    assert not set(base) & set(bench), "a package pinned in both locks"


def test_the_import_check_sees_a_missing_declaration(tmp_path):
    (tmp_path / "mod.py").write_text("import numpy\nfrom gcsfs import GCSFileSystem\nfrom . import x\nimport os\n")
    found = third_party_imports(tmp_path)
    assert set(found) == {"numpy", "gcsfs.GCSFileSystem"}
    assert distribution("gcsfs.GCSFileSystem") == "gcsfs" and distribution("PIL.Image") == "pillow"
    assert distribution("google.cloud.storage") == "google-cloud-storage"


def own_imports_missing(folder: Path) -> list[str]:
    """`from sandmine.x import name` lines under `folder` whose name sandmine no longer has."""
    missing = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sandmine":
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if hasattr(module, alias.name):
                        continue
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"{path.relative_to(folder.parent)}: from {node.module} import {alias.name}")
    return missing


def test_benches_and_scripts_import_what_sandmine_has():
    """No test runs the benches (they take minutes): this keeps a renamed function from breaking one unseen."""
    missing = own_imports_missing(ROOT / "bench") + own_imports_missing(ROOT / "scripts")
    assert not missing, "; ".join(missing)


def test_the_own_import_check_sees_a_removed_name(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "old.py").write_text("from sandmine.steps.train import load_scenes\n")
    assert own_imports_missing(tmp_path / "bench") == ["bench/old.py: from sandmine.steps.train import load_scenes"]
