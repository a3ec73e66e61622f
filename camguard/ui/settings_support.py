"""What the settings window shares with the tray, the first-run window and the shell: the
ports it is given (start at login, the self-test, the parental-lock check), the alert
settings it derives, and the masked password prompt."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from PySide6.QtWidgets import QInputDialog, QLineEdit, QWidget

from camguard.core.decision import Choice
from camguard.store.parental_lock import LockCheck, LockGuard, require_unlock
from camguard.store.ui_settings import UiSettings
from camguard.ui.ports import AlertSettings

# The self-test: ``run(progress, cancel)`` returns the plain-text report. Runs on a pool
# thread and may block for about a minute; ``progress`` may be called from that thread.
SelftestRun = Callable[[Callable[[str], None], threading.Event], str]
# Asks for and checks the parental-lock password (OK at once when no lock is set).
Unlock = Callable[[], LockCheck]
AUTOSTART = "autostart"  # lockable only by a policy that locks every setting ("*")
_DECISIONS = {"allow": Choice.ALLOW_ONCE, "kill": Choice.KILL, "block": Choice.BLOCK}


class AutostartPort(Protocol):
    """Start at login (camguard.store.autostart.Autostart fits). GUI thread; a file."""

    def is_enabled(self) -> bool: ...

    def set(self, enabled: bool) -> None: ...


def alert_settings(ui: UiSettings, base: AlertSettings | None = None) -> AlertSettings:
    """The controller's and popup's settings from the window's (``base`` keeps the rest)."""
    b = base or AlertSettings()
    return AlertSettings(countdown=ui.countdown, default_decision=_DECISIONS[ui.alert_default],
                         stopped_linger=b.stopped_linger, notifications=ui.desktop_notification,
                         parental=b.parental, freeze=ui.freeze_while_asking,
                         storm_wait=b.storm_wait)


def password_prompt(parent: QWidget | None) -> Callable[[], str | None]:
    """Asks for the parental-lock password in a masked input dialog (None: cancelled)."""

    def ask() -> str | None:
        text, ok = QInputDialog.getText(parent, "camguard", "Parental lock password:",
                                        QLineEdit.EchoMode.Password)
        return text if ok else None

    return ask


def lock_unlocker(guard: LockGuard, ask: Callable[[], str | None]) -> Unlock:
    return lambda: require_unlock(guard, ask)
