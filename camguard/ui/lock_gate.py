"""The parental lock in front of quit, pause and unblock (the tray's own lock, or the
service's in service mode)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject

from camguard.core.models import DeviceKind
from camguard.core.text import literal
from camguard.store.parental_lock import LockGuard, require_unlock
from camguard.ui.bridge import Worker
from camguard.ui.tray_options import Say

log = logging.getLogger(__name__)


class LockGate(QObject):
    """Asks for the parental-lock password before an intent goes through (GUI thread: the
    scrypt check takes about 50 ms, the dialog as long as the user needs)."""

    def __init__(self, guard: LockGuard | None, ask: Callable[[], str | None], say: Say,
                 io: Worker, *, service_lock: Callable[[], bool] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._guard = guard
        self._ask = ask
        self._say = say
        self._io = io
        self._service_lock = service_lock

    def run(self, what: str, action: Callable[[], None]) -> bool:
        """``action()`` now when no lock is set or the password is right; else say why
        (a wrong password says how long to wait). False when refused."""
        if self._guard is not None:
            answer = require_unlock(self._guard, self._ask)
            if not answer.ok:
                why = answer.message or "the parental lock refused"
                log.warning("%s refused by the parental lock: %s", what, why)
                self._say("Parental lock", f"{what}: {literal(why, 300)}")
                return False
        action()
        return True

    def unblock(self, kind: DeviceKind, unblock: Callable[[DeviceKind, str | None], None]
                ) -> None:
        what = f"Unblock {kind.value}"
        remote = self._service_lock
        if remote is None:
            self.run(what, lambda: unblock(kind, None))
            return

        def asked(is_set: bool) -> None:
            if not is_set:
                unblock(kind, None)
                return
            password = self._ask()
            if password is None:
                self._say("Parental lock", f"{what}: no password given")
                return
            unblock(kind, password)  # the service checks it and says why if it is wrong

        # The service's lock, asked off the GUI thread; on failure the service decides.
        self._io.submit(remote, asked, lambda _e: unblock(kind, None))
