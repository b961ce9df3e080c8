"""Write docs/params.md, the params reference, from the schema in src/sandmine/core/config.py.

    python scripts/params_reference.py            # rewrite docs/params.md
    python scripts/params_reference.py --check    # exit 1 when docs/params.md is not what the schema gives

Each leaf of params.yaml gets its key, type, default, valid values (the `param(..., Spec)` beside the
field) and meaning: the comment on the field's line and the comment lines right above it. A field
without a comment is an error: the schema is the one place where a knob is explained.
"""

from __future__ import annotations

import argparse
import inspect
import io
import sys
import tokenize
from dataclasses import fields, is_dataclass
from pathlib import Path

from sandmine.core import config

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "params.md"


def comments(cls: type) -> dict[str, str]:
    """Field name → the comment on its line and the comment lines right above it, for one dataclass."""
    lines, _ = inspect.getsourcelines(cls)
    by_line: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
        if tok.type == tokenize.COMMENT:
            by_line[tok.start[0]] = tok.string.lstrip("#").strip()
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    out: dict[str, str] = {}
    for i, line in enumerate(lines, start=1):
        head = line.strip().split(":", 1)[0]
        if line.startswith("    ") and not line.startswith("     ") and head in names and head not in out:
            above = []
            j = i - 1
            while j in by_line and lines[j - 1].strip().startswith("#"):
                above.insert(0, by_line[j])
                j -= 1
            trailing = [by_line[i]] if i in by_line and not line.strip().startswith("#") else []
            out[head] = " ".join(above + trailing)
    return out


def sections(cls: type = config.Params, prefix: str = "") -> list[tuple[str, type]]:
    """(dotted prefix, dataclass) of every section, depth first: ("", Params), ("source.", SourceParams), …"""
    found = [(prefix, cls)]
    for f in fields(cls):  # type: ignore[arg-type]
        sub = config._hints(cls)[f.name]
        if is_dataclass(sub):
            found += sections(sub, f"{prefix}{f.name}.")  # type: ignore[arg-type]
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference() -> tuple[str, list[str]]:
    """The Markdown page, and the keys that have no meaning in the schema."""
    missing: list[str] = []
    out = [
        "# Params reference",
        "",
        "Generated from the schema in `src/sandmine/core/config.py` by `python scripts/params_reference.py`;",
        "do not edit by hand (`tests/test_docs.py` fails when this page and the schema disagree).",
        "Every key must be in `params.yaml`; an unknown key, a wrong type or a value outside its valid values",
        "stops a stage at once, naming the key.",
    ]
    for prefix, cls in sections():
        meaning = comments(cls)
        leaves = [f for f in fields(cls) if not is_dataclass(config._hints(cls)[f.name])]  # type: ignore[arg-type]
        if not leaves:
            continue
        title = prefix.rstrip(".") or "top level"
        doc = " ".join((cls.__doc__ or "").split())
        out += ["", f"## `{title}`" if prefix else "## top level", "", doc, ""]
        out += ["| key | type | default | valid values | meaning |", "|---|---|---|---|---|"]
        for f in leaves:
            k = config.knob(f"{prefix}{f.name}")
            kind = getattr(k.kind, "__name__", str(k.kind)) + (" or null" if k.nullable else "")
            valid = str(k.valid) if k.valid else ("true / false" if k.kind is bool else "any")
            text = meaning.get(f.name, "")
            if not text:
                missing.append(k.key)
            out.append(f"| `{k.key}` | {kind} | `{k.shown_default}` | {_cell(valid)} | {_cell(text)} |")
    return "\n".join(out) + "\n", missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with docs/params.md instead of writing it")
    a = parser.parse_args()
    text, missing = reference()
    if missing:
        sys.exit(f"error: no comment explains {', '.join(missing)} in src/sandmine/core/config.py: add one")
    if a.check:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit(f"error: {OUT} is out of date: run python scripts/params_reference.py")
        return
    OUT.write_text(text)
    print(f"{text.count(chr(10))} lines -> {OUT}")


if __name__ == "__main__":
    main()
