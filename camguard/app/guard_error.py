"""The Guard's one exception (app/guard.py), in a module of its own: a command catches it
without loading the Guard's answer types and the block model (issue 16)."""

from __future__ import annotations


class GuardError(Exception):
    """A request that could not be answered or was refused as a whole: ``code`` is the
    service's error code (or ``error`` locally), ``outcome`` how it ended, if known."""

    def __init__(self, message: str, code: str = "error", outcome: str | None = None
                 ) -> None:
        super().__init__(message)
        self.code = code
        self.outcome = outcome
