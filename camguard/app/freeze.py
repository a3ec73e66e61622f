"""Freeze while asking for a user's tray (issue 16): the platform's freezer (journal and
watchdog, platform/linux/freeze.py) and core.freeze's bookkeeping, built here and nowhere
else. Opened only once this process is the running tray: opening continues whatever the
journal of an earlier run still lists, which a second launch must not do to the running
tray's freezes."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from camguard.core.freeze import MAX_FREEZE, FreezeWhileAsking
from camguard.platform import current
from camguard.store import paths

log = logging.getLogger(__name__)

JOURNAL = "frozen.json"


class TrayFreeze:
    """Builds the freezer when the tray starts (:meth:`open`, the GUI thread) and continues
    everything when it ends (:meth:`close`). ``eager``: the setting is on, so the watchdog
    starts at once rather than at the first freeze. ``limit``: how long a freeze lasts at
    most (MAX_FREEZE; a test's short one)."""

    def __init__(self, journal: Path | None = None, *, eager: bool = False,
                 limit: float = MAX_FREEZE) -> None:
        self.journal = journal if journal is not None else paths.state_dir() / JOURNAL
        self._eager = eager
        self._limit = limit
        self.guard: FreezeWhileAsking | None = None

    def open(self) -> FreezeWhileAsking:
        if self.guard is None:
            with contextlib.suppress(OSError):
                self.journal.parent.mkdir(parents=True, exist_ok=True)
            freezer = current().freezer(self.journal, eager=self._eager, limit=self._limit)
            self.guard = FreezeWhileAsking(freezer, own_pid=os.getpid())
        return self.guard

    def close(self) -> None:
        if self.guard is not None:
            for result in self.guard.close():
                log.info("on quitting: %s", result.message)
