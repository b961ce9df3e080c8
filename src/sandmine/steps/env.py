"""Stage env: metrics/env.json, the fingerprint of the machine and packages that every stage's numbers come from."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sandmine.core import determinism
from sandmine.core.config import Params
from sandmine.core.errors import SandmineError
from sandmine.core.files import write_json

log = logging.getLogger(__name__)
DEVICE_CHANGE = "SANDMINE_DEVICE_CHANGE"


def run(p: Params, out: Path) -> None:
    """Write the fingerprint of a run with params `p` on this machine to `out`.

    Every other stage depends on `out` and refuses to run under another fingerprint
    (`determinism.check`), so their results always sit next to the fingerprint they were made under.

    Raises:
        SandmineError: `out` records another device kind (cpu, cuda) for training or prediction than this
            run would use, and SANDMINE_DEVICE_CHANGE=1 is not set: GPU numbers never replace CPU numbers
            (or back) unasked.
    """
    env = determinism.of_params(p)
    if out.exists() and os.environ.get(DEVICE_CHANGE) != "1":
        old = json.loads(out.read_text())
        changed = [
            f"{role}: {old[f'{role}_device']} there, {env[f'{role}_device']} here"
            for role in ("train", "predict")
            if f"{role}_device" in old and old[f"{role}_device"] != env[f"{role}_device"]
        ]
        if changed:
            raise SandmineError(
                f"the results recorded with this fingerprint come from another kind of device ({'; '.join(changed)})",
                str(out),
                "set train.device and predict.device to the recorded kind (cpu) to reproduce them, or run with "
                f"{DEVICE_CHANGE}=1 to replace them with results of this device",
            )
    write_json(out, env)
    log.info("fingerprint -> %s: %s", out, ", ".join(f"{k} {v}" for k, v in sorted(env.items())))
