"""The docs cannot drift: params and metrics they name exist, the params reference is the schema's."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from sandmine.core.config import Params, knob

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SECTIONS = {f.name for f in fields(Params)}
FILES = (".csv", ".geojson", ".gpkg", ".html", ".json", ".md", ".ndjson", ".png", ".pt", ".py", ".tif", ".vrt", ".yaml")
METRIC_PREFIXES = (
    "val_",
    "aoi_",
    "scene_",
    "truth_aoi_",
    "object_",
    "area_pred",
    "area_label",
    "area_error",
    "area_abs",
)


def _reference_module():
    spec = importlib.util.spec_from_file_location("params_reference", ROOT / "scripts" / "params_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_spans(text: str) -> list[str]:
    """Inline code of a Markdown page (fenced blocks left out: they hold commands and output)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def param_keys_named(text: str) -> set[str]:
    """Dotted keys under a params section named in inline code: `aoi.buffer_m`, `source.kind: gee`,
    `-S split.fold=1`; file names (`survey.gpkg`) and patterns (`model.*`) are not keys."""
    found = set()
    for span in _code_spans(text):
        for word in re.findall(r"[A-Za-z_][\w.]*", span):
            head = word.split(".", 1)[0]
            if "." in word and head in SECTIONS and not word.endswith(FILES) and not word.endswith("."):
                found.add(word)
    return found


def metric_keys_named(text: str) -> set[str]:
    return {s for s in _code_spans(text) if re.fullmatch(r"[a-z0-9_.]+", s) and s.startswith(METRIC_PREFIXES)}


def _is_param(key: str) -> bool:
    try:
        knob(key)
        return True
    except KeyError:
        return any(k.startswith(key + ".") for k in _all_keys())


def _all_keys() -> list[str]:
    from sandmine.core.config import knobs

    return [k.key for k in knobs()]


def _flat(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out += _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k]
    return out


def committed_metrics() -> dict[str, list[str]]:
    """metrics/<file>.json → its leaf keys, dotted."""
    return {p.name: _flat(json.loads(p.read_text())) for p in sorted((ROOT / "metrics").glob("*.json"))}


def metrics_reference(text: str) -> dict[str, list[str]]:
    """docs/metrics.md: per `metrics/<file>.json` heading, the keys of its table's first column."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"## `metrics/([\w.]+\.json)`", line)
        if m:
            current = m.group(1)
            out[current] = []
        elif current and line.startswith("| `"):
            out[current] += re.findall(r"`([^`]+)`", line.split("|")[1])
    return out


def _pattern(entry: str) -> re.Pattern:
    placeholders = {
        "<N>": r"\d+",
        "<period>": r"\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d",
        "<change>": r"new|expanded|abandoned",
    }
    regex = re.escape(entry)
    for name, sub in placeholders.items():
        regex = regex.replace(re.escape(name), f"(?:{sub})")
    return re.compile(regex)


def test_params_reference_is_the_schemas():
    text, missing = _reference_module().reference()
    assert not missing, f"schema fields without a comment to explain them: {missing}"
    page = ROOT / "docs" / "params.md"
    assert page.read_text() == text, "docs/params.md is out of date: run python scripts/params_reference.py"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_only_params_that_exist(page: Path):
    unknown = sorted(k for k in param_keys_named(page.read_text()) if not _is_param(k))
    assert not unknown, f"{page.relative_to(ROOT)} names params the schema lacks: {unknown}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_only_metrics_that_exist(page: Path):
    keys = {k.rsplit(".", 1)[-1] for keys in committed_metrics().values() for k in keys}
    keys |= {k for keys in committed_metrics().values() for k in keys}
    unknown = sorted(k for k in metric_keys_named(page.read_text()) if k not in keys)
    assert not unknown, f"{page.relative_to(ROOT)} names metrics no stage writes: {unknown}"


def test_scripts_override_only_params_that_exist():
    """`-S key=value` in the sweep scripts and the Makefile name keys of the schema."""
    for path in [ROOT / "Makefile", *sorted((ROOT / "scripts").glob("*.sh"))]:
        keys = re.findall(r"-S '?\"?([a-z_]+(?:\.[a-z_0-9]+)+)=", path.read_text())
        unknown = sorted(k for k in keys if not _is_param(k))
        assert not unknown, f"{path.relative_to(ROOT)} overrides params the schema lacks: {unknown}"


def test_metrics_reference_covers_every_committed_metric():
    reference = metrics_reference((ROOT / "docs" / "metrics.md").read_text())
    for name, keys in committed_metrics().items():
        assert name in reference, f"docs/metrics.md has no section for metrics/{name}"
        patterns = [_pattern(e) for e in reference[name]]
        undocumented = [k for k in keys if not any(p.fullmatch(k) for p in patterns)]
        assert not undocumented, f"metrics/{name} keys missing from docs/metrics.md: {undocumented}"
        stale = [e for e, p in zip(reference[name], patterns) if not any(p.fullmatch(k) for k in keys)]
        assert not stale, f"docs/metrics.md names keys metrics/{name} does not have: {stale}"


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 150, f"README.md has {lines} lines: move detail to docs/"


def test_drifted_names_are_caught():
    """The checks above find the names the README once got wrong."""
    assert "train.operating_point" in param_keys_named("(`train.operating_point`: `best_f1`)")
    assert not _is_param("train.operating_point")
    assert "val_threshold" in metric_keys_named("in `metrics/train.json` (`val_threshold`, `val_ece`)")
    assert "val_threshold" not in {k for keys in committed_metrics().values() for k in keys}
    assert param_keys_named("`survey.gpkg`, `model.*`, `-S split.fold=1`, `source.kind: gee`") == {
        "split.fold",
        "source.kind",
    }
