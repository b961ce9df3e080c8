"""Errors that tell the user what is wrong, where, and how to fix it."""

from __future__ import annotations


class SandmineError(Exception):
    """A problem with the user's input, reported as what / where / how to fix.

    Stage scripts catch this and print it without a traceback.
    """

    def __init__(self, what: str, where: str = "", fix: str = "") -> None:
        self.what, self.where, self.fix = what, where, fix
        parts = [f"{where}: {what}" if where else what]
        if fix:
            parts.append(f"How to fix: {fix}")
        super().__init__("\n".join(parts))
