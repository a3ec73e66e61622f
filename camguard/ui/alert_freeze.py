"""What the alert says about an app paused while it asks (core/freeze.py): paused until the
answer, or, once the freezer's limit has passed (the watchdog continues it, fail-open),
that it was let go and may be using the device now. The popup redraws at that deadline
(one single-shot :class:`LetGoTimer`), not by polling."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer

from camguard.ui.model import Alert

PAUSED_LINE = "Paused until you answer"


def _duration(seconds: float) -> str:
    s = max(1, round(seconds))
    if s < 90:
        return f"{s} second{'s' if s != 1 else ''}"
    m = round(s / 60)
    return f"{m} minute{'s' if m != 1 else ''}"


def let_go(alert: Alert, now: float) -> bool:
    """Whether the freezer has let the alert's app go (its limit passed)."""
    return alert.paused and alert.paused_until is not None and now >= alert.paused_until


def paused_line(alert: Alert, now: float) -> str:
    """The alert's line about its paused app ("" when it was not paused)."""
    if not alert.paused:
        return ""
    if not let_go(alert, now) or alert.paused_until is None:
        return PAUSED_LINE
    kind = alert.usage.device.kind.value
    return (f"It was let go after {_duration(alert.paused_until - alert.at)}; "
            f"it may be using the {kind} now")


def let_go_in_ms(alert: Alert, now: float) -> int | None:
    """Milliseconds until the alert's app is let go (when to redraw); None: never, or
    already."""
    if not alert.paused or alert.paused_until is None or now >= alert.paused_until:
        return None
    return max(1, math.ceil((alert.paused_until - now) * 1000))


class LetGoTimer(QTimer):
    """Fires ``redraw`` once, when the alert it follows has its app let go (precise: a
    coarse timer may fire 5 % early, before the deadline)."""

    def __init__(self, parent: QObject, redraw: Callable[[], None]) -> None:
        super().__init__(parent)
        self.setSingleShot(True)
        self.setTimerType(Qt.TimerType.PreciseTimer)
        self.timeout.connect(redraw)

    def follow(self, alert: Alert) -> None:
        wait = let_go_in_ms(alert, time.time())
        if wait is None:
            self.stop()
        else:
            self.start(wait)
