"""Desktop notifications: a second alert channel, through the platform's
:class:`~camguard.platform.base.NotificationChannel` (Linux: org.freedesktop.Notifications
over jeepney, platform/linux/notify.py; a platform without them hands out a null channel).

This module is the Qt side: what an alert's notification says and offers, and the
channel's reports turned into signals. No notifications (no session bus, no daemon, no
such thing on this platform) is never an error: each alert is then offered to
``fallback_requested`` (the shell shows it with QSystemTrayIcon.showMessage).
"""

from __future__ import annotations

import logging
import threading
import time

from PySide6.QtCore import QObject, Signal

from camguard.core.decision import Choice
from camguard.core.models import DeviceKind
from camguard.core.text import literal
from camguard.platform import current
from camguard.platform.base import Notifications
from camguard.ui.model import Alert

log = logging.getLogger(__name__)

# Action keys we send -> decisions. "default" (a click on the notification body) shows the
# popup or status window instead of deciding anything.
ACTIONS = {"allow": Choice.ALLOW_ONCE, "kill": Choice.KILL, "block": Choice.BLOCK}
# A bus that accepts the connection but never answers (jeepney waits 10 s for Hello) must
# not swallow alerts: after this long without a daemon, alerts take the fallback.
CONNECT_GRACE = 5.0


def _summary(alert: Alert) -> str:
    kind = alert.usage.device.kind
    return "Camera turned on" if kind is DeviceKind.CAMERA else "Microphone turned on"


def plain_body(alert: Alert) -> list[str]:
    """What the notification says, as plain lines (already through literal())."""
    usage = alert.usage
    p = usage.process
    if p is None:
        who = "a process camguard cannot see"
    else:
        user = f", user {literal(p.user, 32)}" if p.user else ""
        who = f"{literal(p.name or '?', 48)} (pid {p.pid}{user})"
    lines = [who]
    if p is not None and p.exe:
        lines.append(literal(p.exe, 110))
    device = usage.device
    lines.append(f"{device.kind.value}: {literal(device.name or device.id, 80)}")
    return lines


class DesktopNotifier(QObject):
    """Sends one notification per alert and turns its buttons into decisions.

    GUI-thread API (:meth:`notify`, :meth:`withdraw`, :meth:`stop`) never blocks: the
    platform's channel queues the work for its own thread. Signals are emitted on that
    thread and reach GUI-thread receivers as queued calls.
    """

    decided = Signal(int, str)  # alert id, Choice value
    details_requested = Signal(int)  # alert id ("default" action: a click on the body)
    fallback_requested = Signal(str, str)  # title, plain text: show it some other way
    ready = Signal(bool)  # True: a daemon answered; False: falling back
    sent = Signal(int, int)  # alert id, notification id (tests and logs)

    def __init__(self, bus: str = "SESSION", *, icon: str = "", expire_ms: int = -1,
                 parent: QObject | None = None,
                 notifications: Notifications | None = None) -> None:
        super().__init__(parent)
        self._started_at: float | None = None
        # Set by stop(): nothing more is emitted (the channel's thread may outlive stop()
        # by a few seconds while a call times out, and must not signal into a Qt being
        # torn down).
        self._stopping = threading.Event()
        self._alerts: dict[int, Alert] = {}  # alert id -> alert, for a fallback's text
        self._lock = threading.Lock()
        self.available: bool | None = None  # None until the daemon was asked
        where = notifications if notifications is not None else current().notifications()
        self._channel = where.channel(_Events(self), bus=bus, icon=icon, expire_ms=expire_ms)

    @property
    def capabilities(self) -> tuple[str, ...]:
        return self._channel.capabilities

    @property
    def unique_name(self) -> str:
        """This connection's bus name, once connected."""
        return self._channel.unique_name

    # -- GUI-thread API ----------------------------------------------------------------
    def start(self) -> None:
        if self._started_at is None:
            self._started_at = time.monotonic()
            self._channel.start()

    def notify(self, alert: Alert) -> None:
        waited = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        if self._started_at is None or self.available is False or (
                self.available is None and waited > CONNECT_GRACE):
            self._fallback(alert)
            return
        with self._lock:
            self._alerts[alert.id] = alert
            while len(self._alerts) > _MAX_REMEMBERED:
                self._alerts.pop(next(iter(self._alerts)))
        self._channel.send(alert.id, _summary(alert), plain_body(alert), _actions(alert))

    def withdraw(self, alert_id: int) -> None:
        with self._lock:
            self._alerts.pop(alert_id, None)
        if self._started_at is not None and self.available is not False:
            self._channel.withdraw(alert_id)

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping.set()
        if self._started_at is not None:
            self._channel.stop(timeout)

    # -- reports from the channel's thread ----------------------------------------------
    def _fallback(self, alert: Alert) -> None:
        if self._stopping.is_set():
            return
        self.fallback_requested.emit(_summary(alert), "\n".join(plain_body(alert)))

    def _failed(self, alert_id: int) -> None:
        with self._lock:
            alert = self._alerts.pop(alert_id, None)
        if alert is not None:
            self._fallback(alert)


# Alerts remembered for a fallback's text: more than can be pending at once.
_MAX_REMEMBERED = 256


def _actions(alert: Alert) -> list[tuple[str, str]]:
    actions = [("default", "Show details"), ("allow", "Allow once")]
    if alert.usage.process is not None:
        actions.append(("kill", "Kill app"))
    actions.append(("block", f"Block {alert.usage.device.kind.value}"))
    return actions


class _Events:
    """The channel's reports (platform.base.NotificationEvents) as the notifier's signals."""

    def __init__(self, notifier: DesktopNotifier) -> None:
        self._n = notifier

    def ready(self, ok: bool, why: str) -> None:
        self._n.available = ok
        if not ok:
            log.info("desktop notifications unavailable (%s); using the tray's messages",
                     literal(why, 300))
        if not self._n._stopping.is_set():
            self._n.ready.emit(ok)

    def sent(self, key: int, nid: int) -> None:
        if not self._n._stopping.is_set():
            self._n.sent.emit(key, nid)

    def failed(self, key: int) -> None:
        self._n._failed(key)

    def action(self, key: int, action: str) -> None:
        if self._n._stopping.is_set():
            return
        if action == "default":
            self._n.details_requested.emit(key)
        elif action in ACTIONS:
            self._n.decided.emit(key, ACTIONS[action].value)
