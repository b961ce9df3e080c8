"""Atomic writes: a file appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sandmine.core.errors import SandmineError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    An interrupted stage leaves at most a `.tmp-*` file that no DVC output names.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are for sharing
        os.replace(tmp, path)
    except Exception as exc:  # GDAL's write errors come as OSErrors and as CPLE_* errors
        full = disk_full(path, exc)
        if full is None:
            raise
        raise full from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically with sorted keys, so reruns are byte-identical."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def round_metrics(metrics: dict, digits: int = 4) -> dict:
    """Numeric metrics (nested dicts allowed) rounded for stable diffs; NaN (undefined) as null."""
    out: dict = {}
    for k, v in sorted(metrics.items()):
        if isinstance(v, dict):
            out[k] = round_metrics(v, digits)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            out[k] = int(v)
        else:
            out[k] = None if math.isnan(float(v)) else round(float(v), digits)
    return out


OWNED = ".sandmine-output"
"""Marker file that a command writes in every folder it makes: only such folders are ever emptied."""


def claim_dir(path: str | Path, where: str = "") -> Path:
    """Make `path` a folder this program owns, without deleting anything; refuse one it does not own.

    A missing or empty folder is created and marked; a marked folder is ours from an earlier run. A
    non-empty folder without the marker is somebody's own files (`--out .`, `--out data`): refused.
    Call it before any work, so a wrong folder costs nothing.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SandmineError("is a file, not a folder", f"{where} {path}".strip(), "name a folder (a new one is best)")
    if path.is_dir() and not (path / OWNED).exists():
        others = sorted(c.name for c in path.iterdir())
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise SandmineError(
                f"the folder holds files that sandmine did not write ({shown}) and would be emptied on each run",
                f"{where} {path}".strip(),
                f"name a new or empty folder (e.g. {path / 'sandmine_out'}); a folder of an earlier sandmine "
                f"run has a {OWNED} file: if this is one from before that marker, delete it yourself",
            )
    path.mkdir(parents=True, exist_ok=True)
    (path / OWNED).touch()
    return path


def fresh_dir(path: str | Path, where: str = "") -> Path:
    """Empty an output folder owned by one stage (DVC removes it too before a run), keeping its marker.

    Refuses a folder that holds files and no marker (see `claim_dir`): nothing a user names is emptied.
    """
    path = claim_dir(path, where)
    for child in sorted(path.rglob("*"), reverse=True):
        if child == path / OWNED:
            continue
        child.unlink() if child.is_file() or child.is_symlink() else child.rmdir()
    return path


# ---------------------------------------------------------------------------------- outputs vs inputs


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file: equal once resolved (symlinks, `..`), or one inode (hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, folder: Path) -> bool:
    return child.resolve().is_relative_to(folder.resolve())


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_outputs(
    inputs: dict[str, Path | None],
    outputs: dict[str, Path | None],
    folders: dict[str, Path | None] | None = None,
    sizes: dict[str, int] | None = None,
) -> None:
    """Refuse, before any work, outputs that would destroy an input or cannot be written.

    Args:
        inputs: what the command reads, by the option that names it (`--model`), None when not given.
        outputs: files it writes, by option (`--out`).
        folders: folders it owns and empties (`--out` of the survey): no input may lie inside one.
        sizes: bytes an output will take where that can be estimated: the free space must hold it.

    Raises:
        SandmineError: an output is an input (same path, a symlink or hard link to it) or another
            output, an input lies in a folder that is emptied, an output file is an existing folder,
            its folder cannot be written, or the disk lacks the estimated space.
    """
    folders = folders or {}
    ins = [(k, Path(v)) for k, v in inputs.items() if v is not None]
    outs = [(k, Path(v)) for k, v in outputs.items() if v is not None]
    dirs = [(k, Path(v)) for k, v in folders.items() if v is not None]
    for i, (key, out) in enumerate(outs + dirs):
        for k_in, inp in ins:
            if _same(out, inp):
                raise SandmineError(
                    f"{key} names the same file as {k_in}: writing it would destroy the input",
                    str(out),
                    f"give {key} a new file name",
                )
        for key2, out2 in (outs + dirs)[i + 1 :]:
            if _same(out, out2):
                raise SandmineError(
                    f"{key} and {key2} name the same file: one would overwrite the other",
                    str(out),
                    "give each its own name",
                )
    for key, folder in dirs:
        for k_in, inp in ins:
            if _inside(inp, folder):
                raise SandmineError(
                    f"{k_in} ({inp}) lies inside {key}, a folder that is emptied on each run",
                    str(folder),
                    f"move {inp} out of {folder}, or name another {key}",
                )
    for key, out in outs:
        if out.is_dir():
            raise SandmineError(
                f"{key} is an existing folder; it must name a file",
                str(out),
                f"add a file name, e.g. {out / 'out.tif'}",
            )
    for key, out in outs + dirs:
        _check_writable(key, out)
    for key, need in (sizes or {}).items():
        out = dict(outs + dirs)[key]
        free = shutil.disk_usage(_existing_ancestor(out.parent)).free
        if need > free:
            raise SandmineError(
                f"{key} needs about {_gib(need)} and the disk has {_gib(free)} free",
                str(out),
                "free some space, or write to another disk",
            )


def _check_writable(key: str, out: Path) -> None:
    """Create and delete a file where `out` goes: the real test (root ignores permission bits, not read-only disks)."""
    folder = _existing_ancestor(out if out.is_dir() else out.parent)
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=folder)
    except OSError as exc:
        raise SandmineError(
            f"{key} cannot be written: {folder} does not accept new files ({exc.strerror})",
            str(out),
            "choose a folder you can write to, or fix its permissions (or a read-only mount)",
        ) from exc
    os.close(fd)
    os.unlink(probe)


def _gib(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} bytes"


DISK_LOW = 64 * 2**20  # below this much free space, a failed write is put down to a full disk


def disk_full(path: str | Path, exc: BaseException) -> SandmineError | None:
    """The error to raise when writing `path` failed for lack of space, else None (re-raise `exc`).

    GDAL words a full disk several ways ("Write failed", "TIFFAppendToStrip: Seek error", ENOSPC), so a
    failure also counts as one when the disk has almost no space left.
    """
    text = str(exc).strip()
    free = shutil.disk_usage(_existing_ancestor(Path(path).parent)).free
    said = getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text
    if not (said or free < DISK_LOW):
        return None
    return SandmineError(
        f"the disk is full while writing it ({_gib(free)} free now; {text})",
        str(path),
        "free some space, or write to another disk, and run again",
    )


# ------------------------------------------------------------------------------------------ one writer


_HELD: dict[Path, tuple[int, int]] = {}  # lock file -> (fd, depth): re-entrant within a process


def _lock_file(path: Path) -> Path:
    path = path.absolute()
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def output_lock(*paths: str | Path | None) -> Iterator[None]:
    """Hold, for the block, a lock on each output path: a second run writing one of them stops at once
    with "another run is writing X (pid N)" instead of both writing the same file.

    The lock is `flock` on `.{name}.lock` beside the output, holding the writer's pid; removed on release.
    """
    taken: list[Path] = []
    try:
        for p in paths:
            if p is None:
                continue
            lock = _lock_file(Path(p))
            _acquire(lock, Path(p))
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            _release(lock)


def _acquire(lock: Path, path: Path) -> None:
    if lock in _HELD:
        fd, depth = _HELD[lock]
        _HELD[lock] = (fd, depth + 1)
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SandmineError(
                f"another run is writing {path} (pid {pid})",
                str(path),
                "wait for it to finish, or write to another file",
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder removed the file between our open and flock: take the new one
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[lock] = (fd, 1)


def _release(lock: Path) -> None:
    fd, depth = _HELD[lock]
    if depth > 1:
        _HELD[lock] = (fd, depth - 1)
        return
    del _HELD[lock]
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()  # while still locked: a waiting run then sees the inode change and retries
    os.close(fd)


def temp_name(path: str | Path, suffix: str) -> Path:
    """A temporary name beside `path`, unique to this process and call (the final rename stays on one disk)."""
    path = Path(path)
    return path.with_name(f".tmp-{path.name}-{os.getpid()}-{secrets.token_hex(4)}{suffix}")
