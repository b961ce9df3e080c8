"""sandmine: sand mining mapped from Sentinel-2/1 imagery. Importing it pins the CPU kernels (core/determinism)."""

from sandmine.core import determinism as _determinism
from sandmine.core.errors import SandmineError as _SandmineError

try:  # before numpy and torch load, in every process that imports sandmine
    _determinism.pin()
except _SandmineError as _exc:
    raise SystemExit(f"error: {_exc}") from None
