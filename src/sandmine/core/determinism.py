"""The same bits on every CPU: instruction sets and thread counts pinned at start-up, and the fingerprint of a run.

Kernels choose code paths by the instruction set of the machine: oneDNN's convolutions, ATen's
vectorised ops, MKL's GEMM (torch), numpy's SIMD loops (exp, log, power: AVX-512 and AVX2 give
different last bits) and OpenBLAS. So an AVX-512 machine and an AVX2 one, or an Intel and an AMD,
train different models from the same commit. `pin` caps every one of them at one level (AVX2 by
default: every x86-64 CPU of the last decade has it; MKL at its COMPATIBLE branch, the only one
it promises to keep on non-Intel CPUs, and measured no slower here) through the environment
variables that each library reads when it loads or first runs, and fixes the thread counts that
the machine would otherwise choose. `import sandmine` calls it (src/sandmine/__init__.py), so every process that
computes gets it before numpy or torch load: stage scripts, the `sandmine` command, tests, and
worker processes (DataLoader workers are forked with it; Dask workers inherit the environment and
import sandmine before their first task).

`SANDMINE_CPU_PIN=off` turns it off (faster on AVX-512; `metrics/env.json` then says `off` and
records the CPU model, which then decides the bits). A cap already set lower (an older CPU, or a
variable set by hand) is kept: the pin only lowers. `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE`,
which some workplaces set for correctness, are never changed when set.

`fingerprint` returns what decides the bits of a run (flat strings, for `metrics/env.json`);
`differences` compares two of them.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from sandmine.core.errors import SandmineError

if TYPE_CHECKING:
    from sandmine.core.config import Params

SWITCH = "SANDMINE_CPU_PIN"
LEVELS = ("avx2", "off")
DEFAULT = "avx2"
THREADS = "2"  # OMP / MKL / OpenBLAS threads when unset: params.yaml's train.threads and predict.threads

# each library's own cap, lowest first; a value already set at or below the pin's is kept
_ATEN = ("default", "avx2")
_ONEDNN = ("SSE41", "AVX", "AVX2")
_MKL = ("COMPATIBLE",)  # MKL's one branch that gives the same bits on Intel and other CPUs (its AVX2 one: Intel only)
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

# what the pin set, for the fingerprint (this process; a child inherits the variables themselves), and what
# those variables held before it
_applied: dict[str, str] = {}
_before: dict[str, str | None] = {}
_TOUCHED = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE",
            *_THREAD_VARS)  # fmt: skip


def _cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is not there."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    """The CPU's model name (Linux), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _numpy_disabled() -> str:
    """numpy's names of its AVX-512 dispatch targets (NPY_DISABLE_CPU_FEATURES), by numpy version."""
    try:
        major, minor = (int(x) for x in metadata.version("numpy").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return ""
    if (major, minor) >= (2, 4):  # x86-64 microarchitecture levels: X86_V4 is AVX-512
        return "X86_V4 AVX512_ICL AVX512_SPR"
    return "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"


def _lower(name: str, order: tuple[str, ...], value: str) -> None:
    """Set variable `name` to `value` unless it already holds a level of `order` below `value`."""
    old = os.environ.get(name, "")
    upper = [o.upper() for o in order]
    if not (old.upper() in upper and upper.index(old.upper()) < upper.index(value.upper())):
        os.environ[name] = value
    _applied[name] = os.environ[name]


def level() -> str:
    """The pin asked for by SANDMINE_CPU_PIN (default avx2).

    Raises:
        SandmineError: the variable holds another value.
    """
    value = os.environ.get(SWITCH, DEFAULT).strip().lower() or DEFAULT
    if value not in LEVELS:
        raise SandmineError(
            f"unknown value '{value}'", f"environment variable {SWITCH}", f"use one of {', '.join(LEVELS)}, or unset it"
        )
    return value


def pin() -> str:
    """Cap instruction sets and fix thread counts for this process and its children; returns the level.

    Call before numpy and torch load (numpy and OpenBLAS read their variables on import; ATen,
    oneDNN and MKL on first use). Idempotent. Does nothing on other CPUs than x86-64 but threads.
    """
    lvl = level()
    if not _before:
        _before.update({k: os.environ.get(k) for k in _TOUCHED})
    _applied.clear()
    _applied[SWITCH] = lvl
    if lvl == "off":
        return lvl
    for name in _THREAD_VARS:
        os.environ.setdefault(name, THREADS)
        _applied[name] = os.environ[name]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return lvl
    _lower("ATEN_CPU_CAPABILITY", _ATEN, "avx2")
    _lower("ONEDNN_MAX_CPU_ISA", _ONEDNN, "AVX2")
    _lower("MKL_CBWR", _MKL, "COMPATIBLE")
    disabled = set(os.environ.get("NPY_DISABLE_CPU_FEATURES", "").replace(",", " ").split())
    wanted = _numpy_disabled().split()
    if not set(wanted) <= disabled:
        os.environ["NPY_DISABLE_CPU_FEATURES"] = " ".join([*sorted(disabled - set(wanted)), *wanted])
    _applied["NPY_DISABLE_CPU_FEATURES"] = os.environ.get("NPY_DISABLE_CPU_FEATURES", "")
    # OpenBLAS's Haswell kernels are its AVX2 ones; forcing them on a CPU without AVX2 would crash
    if "OPENBLAS_CORETYPE" not in os.environ and {"avx2", "fma"} <= _cpu_flags():
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"
    if "OPENBLAS_CORETYPE" in os.environ:
        _applied["OPENBLAS_CORETYPE"] = os.environ["OPENBLAS_CORETYPE"]
    return lvl


def unpinned_environ() -> dict[str, str]:
    """This process's environment as it was before `pin` changed it (for a child that must choose for itself)."""
    env = dict(os.environ)
    for k, v in _before.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env.pop(SWITCH, None)
    return env


def _numpy_simd() -> str:
    """numpy's SIMD dispatch targets that this process uses (e.g. `X86_V3`), space-separated."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__  # type: ignore
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__  # type: ignore
    return " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f)) or "baseline"


def _blas() -> tuple[str, str]:
    """The BLAS libraries loaded (numpy's, and scipy's once scipy is imported): (library:core type, threads),
    each distinct value once, so that the answer does not depend on which of them a process has loaded yet."""
    from threadpoolctl import threadpool_info

    found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    core = " ".join(sorted({f"{i.get('internal_api')}:{i.get('architecture') or '-'}" for i in found})) or "none"
    threads = " ".join(sorted({str(i.get("num_threads")) for i in found})) or "-"
    return core, threads


def _device(spec: str) -> tuple[str, str]:
    """(kind, name) of the device that `spec` (`auto | cpu | cuda | cuda:N`) resolves to here, as
    sandmine.device.resolve_device resolves it: `auto` is CUDA device 0 when torch sees one."""
    import torch

    if spec == "cpu" or not torch.cuda.is_available():
        return "cpu", "cpu"
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= torch.cuda.device_count():
        return "cuda", f"cuda:{index} (not seen)"
    return "cuda", torch.cuda.get_device_name(index)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def fingerprint(devices: dict[str, tuple[str, str, int]]) -> dict[str, str | int]:
    """What decides the bits of this process's results, flat (metrics/env.json).

    Args:
        devices: per role (`train`, `predict`): (device spec, precision, torch threads) from params.
    """
    import rasterio
    import torch

    blas, blas_threads = _blas()
    pinned = _applied.get(SWITCH, "not called")
    env: dict[str, str | int] = {
        "cpu_pin": pinned,
        "cpu_arch": platform.machine(),
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "free"),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "free"),
        "numpy_simd": _numpy_simd(),
        "blas": blas,
        "blas_threads": blas_threads,
        "omp_threads": os.environ.get("OMP_NUM_THREADS", "free"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "scikit_learn": _version("scikit-learn"),
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }
    for role, (spec, precision, threads) in devices.items():
        kind, name = _device(spec)
        env[f"{role}_device"] = kind
        env[f"{role}_device_name"] = name
        env[f"{role}_precision"] = str(precision)
        env[f"{role}_threads"] = int(threads)
    env["cpu_model"] = cpu_model()
    return env


# recorded, but they decide no bit while the kernels are pinned: the model of an x86-64 CPU with AVX2
INFORMATIVE = ("cpu_model",)


def differences(base: dict, this: dict) -> list[tuple[str, str, str]]:
    """(key, base value, this value) for every field of two fingerprints that decides bits and differs.

    The CPU model counts only where either run had the pin off (then it decides the bits).
    """
    pinned = base.get("cpu_pin") not in ("off", None) and this.get("cpu_pin") not in ("off", None)
    out = []
    for key in sorted(set(base) | set(this)):
        if pinned and key in INFORMATIVE:
            continue
        a, b = base.get(key, "-"), this.get(key, "-")
        if str(a) != str(b):
            out.append((key, str(a), str(b)))
    return out


def of_params(p: Params) -> dict[str, str | int]:
    """The fingerprint of a stage run with params `p`: devices, precisions and threads of training and prediction."""
    return fingerprint(
        {
            "train": (p.train.device, p.train.precision, p.train.threads),
            "predict": (p.predict.device, p.predict.precision, p.predict.threads),
        }
    )


def check(p: Params, path: Path) -> None:
    """Stop unless this process runs under the fingerprint in `path` (metrics/env.json), which every stage's
    results are recorded next to: numbers made under another one would sit next to a fingerprint that is not theirs.

    Raises:
        SandmineError: `path` is missing, or a field that decides bits differs.
    """
    import json

    if not path.exists():
        raise SandmineError("no fingerprint to run under", str(path), "run `dvc repro env` first (stage env writes it)")
    recorded = json.loads(path.read_text())
    diff = differences(recorded, of_params(p))
    if not diff:
        return
    said = "; ".join(f"{k}: {a} there, {b} here" for k, a, b in diff)
    devices = any(k.endswith("_device") for k, _, _ in diff)
    raise SandmineError(
        f"this process would compute other bits than the runs recorded in this file ({said})",
        str(path),
        "to reproduce the recorded numbers, run where these match (`source scripts/env.sh` for the locked packages; "
        f"{SWITCH} unset; train.device and predict.device: cpu for CPU numbers); to make new numbers here instead, "
        + ("SANDMINE_DEVICE_CHANGE=1 " if devices else "")
        + "`dvc repro --force env`, then `dvc repro` (every stage re-runs and the file says what they ran under)",
    )
