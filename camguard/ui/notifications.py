"""Desktop notifications (org.freedesktop.Notifications over jeepney): a second alert channel.

PySide6's QtDBus marshals Notify with the wrong signature (``sisssasa{sv}i``) and the
server rejects it, so jeepney speaks D-Bus here. One background thread owns the connection:
dunst sends ``ActionInvoked`` *to the connection that called Notify* (the signal's
destination is the caller's unique name; measured with dunst 1.9), so sending and listening
must share it. No session bus or no notification daemon is never an error: each alert is
then offered to ``fallback_requested`` (the shell shows it with QSystemTrayIcon.showMessage).
"""

from __future__ import annotations

import html
import logging
import os
import queue
import threading
import time
from typing import Any

from jeepney import DBusAddress, HeaderFields, MatchRule, message_bus, new_method_call
from jeepney.io.threading import DBusRouter, Proxy, open_dbus_connection
from PySide6.QtCore import QObject, Signal

from camguard.core.decision import Choice
from camguard.core.models import DeviceKind
from camguard.core.text import literal
from camguard.ui.model import Alert, Feedback, Level

log = logging.getLogger(__name__)

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
CALL_TIMEOUT = 3.0
# Action keys we send -> decisions. "default" (a click on the notification body) shows the
# popup or status window instead of deciding anything.
ACTIONS = {"allow": Choice.ALLOW_ONCE, "kill": Choice.KILL, "block": Choice.BLOCK}
URGENCY_LOW, URGENCY_NORMAL, URGENCY_CRITICAL = 0, 1, 2
FEEDBACK_EXPIRE_MS = 8000
# A bus that accepts the connection but never answers (jeepney waits 10 s for Hello) must
# not swallow alerts: after this long without a daemon, alerts take the fallback.
CONNECT_GRACE = 5.0


def _summary(alert: Alert) -> str:
    kind = alert.usage.device.kind
    if alert.storm:
        return f"{kind.value.capitalize()} probed again and again"
    if kind is DeviceKind.SCREEN:
        return "Screen capture turned on"
    if kind is DeviceKind.LOCATION:
        return "Location requested"
    return "Camera turned on" if kind is DeviceKind.CAMERA else "Microphone turned on"


def plain_body(alert: Alert) -> list[str]:
    """What the notification says, as plain lines (already through literal())."""
    usage = alert.usage
    p = usage.process
    if p is None:
        who = "a process camguard cannot see"
    else:
        user = f", user {literal(p.user, 32)}" if p.user else ""
        name = p.name or os.path.basename(p.exe or "") or "an unnamed app"
        who = f"{literal(name, 48)} (pid {p.pid}{user})"
    lines = [who]
    if p is not None and p.exe:
        lines.append(literal(p.exe, 110))
    device = usage.device
    lines.append(f"{device.kind.value}: {literal(device.name or device.id, 80)}")
    return lines


class DesktopNotifier(QObject):
    """Sends one notification per alert and turns its buttons into decisions.

    GUI-thread API (:meth:`notify`, :meth:`withdraw`, :meth:`stop`) never blocks: it queues
    work for the notifier thread. Signals are emitted on that thread and reach GUI-thread
    receivers as queued calls.
    """

    decided = Signal(int, str)  # alert id, Choice value
    details_requested = Signal(int)  # alert id ("default" action: a click on the body)
    fallback_requested = Signal(str, str)  # title, plain text: show it some other way
    feedback_fallback = Signal(object)  # a Feedback that found no daemon: show it elsewhere
    ready = Signal(bool)  # True: a daemon answered; False: falling back
    sent = Signal(int, int)  # alert id, notification id (tests and logs)
    feedback_sent = Signal(int)  # notification id of a feedback (tests and logs)

    def __init__(self, bus: str = "SESSION", *, icon: str = "", expire_ms: int = -1,
                 icons: dict[str, str] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bus = bus
        self._icon = icon
        # Per sensor ("camera", "microphone") and per failure ("warning", "error"): a
        # microphone alert never wears the camera, a failure never the "info" look.
        self._icons = dict(icons or {})
        self._feedback_id = 0  # the last feedback notification: the next one replaces it
        self._expire_ms = expire_ms
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        # Set by stop(): the thread then emits nothing more (it may outlive stop() by a few
        # seconds while a call times out, and must not signal into a Qt being torn down).
        self._stopping = threading.Event()
        self._ids: dict[int, int] = {}  # notification id -> alert id (notifier thread only)
        self.available: bool | None = None  # None until the daemon was asked
        self.capabilities: tuple[str, ...] = ()
        self.unique_name = ""  # this connection's bus name, once connected
        self._owner = ""

    # -- GUI-thread API ----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._started_at = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="camguard-notify",
                                            daemon=True)
            self._thread.start()

    def notify(self, alert: Alert) -> None:
        waited = time.monotonic() - self._started_at
        if self._thread is None or self.available is False or (
                self.available is None and waited > CONNECT_GRACE):
            self._fallback(alert)
        else:
            self._queue.put(("notify", alert))

    def say(self, feedback: Feedback) -> None:
        """Tell the person something (no buttons; it goes away by itself)."""
        waited = time.monotonic() - self._started_at
        if self._thread is None or self.available is False or (
                self.available is None and waited > CONNECT_GRACE):
            self.feedback_fallback.emit(feedback)
        else:
            self._queue.put(("say", feedback))

    def withdraw(self, alert_id: int) -> None:
        if self._thread is not None and self.available is not False:
            self._queue.put(("close", alert_id))

    def stop(self, timeout: float = 3.0) -> None:
        """Withdraw every notification still on screen (their buttons would answer nobody
        once camguard has quit), then end the thread."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(("close-all", None))
            self._queue.put(None)
            thread.join(timeout)

    # -- notifier thread ---------------------------------------------------------------
    def _fallback(self, alert: Alert) -> None:
        if self._stopping.is_set():
            return
        self.fallback_requested.emit(_summary(alert), "\n".join(plain_body(alert)))

    def _give_up(self, why: str) -> None:
        log.info("desktop notifications unavailable (%s); using the tray's messages", why)
        self.available = False
        if not self._stopping.is_set():
            self.ready.emit(False)
        while True:  # whatever was queued meanwhile goes the other way
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and item[0] == "notify":
                self._fallback(item[1])
            elif item is not None and item[0] == "say" and not self._stopping.is_set():
                self.feedback_fallback.emit(item[1])

    def _run(self) -> None:
        try:
            router = DBusRouter(open_dbus_connection(self._bus))
        except Exception as exc:  # no bus address, no socket, auth refused...
            self._give_up(f"no session bus: {exc}")
            return
        try:
            with router:
                self._serve(router)
        except Exception:
            log.exception("the notification thread failed")
            self._give_up("internal error")

    def _serve(self, router: Any) -> None:
        server = DBusAddress(PATH, bus_name=NAME, interface="org.freedesktop.Notifications")
        bus = Proxy(message_bus, router, timeout=CALL_TIMEOUT)
        try:
            reply = router.send_and_get_reply(new_method_call(server, "GetCapabilities"),
                                              timeout=CALL_TIMEOUT)
            if reply.header.message_type.name == "error":
                raise RuntimeError(str(reply.body))
            self.capabilities = tuple(str(c) for c in reply.body[0])
            self._owner = str(bus.GetNameOwner(NAME)[0])
            # The bus only forwards the daemon's signals; a unicast signal from any other
            # peer still arrives, hence the sender check in _signal().
            bus.AddMatch(MatchRule(type="signal", sender=NAME, interface=NAME, path=PATH))
        except Exception as exc:
            self._give_up(f"no notification daemon: {exc}")
            return
        # jeepney matches senders literally, so its filter leaves the sender out.
        rule = MatchRule(type="signal", interface=NAME, path=PATH)
        self.unique_name = str(router.unique_name)
        self.available = True
        if not self._stopping.is_set():
            self.ready.emit(True)
        with router.filter(rule, queue=self._queue):
            while (item := self._queue.get()) is not None:
                if isinstance(item, tuple):
                    self._command(router, server, item)
                else:
                    self._signal(bus, item)

    def _command(self, router: Any, server: Any, item: tuple[str, Any]) -> None:
        call = new_method_call
        what, arg = item
        if what == "close-all":
            nids = [*self._ids, *([self._feedback_id] if self._feedback_id else [])]
            self._ids.clear()
            self._feedback_id = 0
            for nid in nids:
                self._call(router, call(server, "CloseNotification", "u", (nid,)))
            return
        if what == "say":
            self._say(router, server, arg)
            return
        if what == "close":
            for nid, alert_id in list(self._ids.items()):
                if alert_id == arg:
                    del self._ids[nid]
                    self._call(router, call(server, "CloseNotification", "u", (nid,)))
            return
        alert: Alert = arg
        actions: list[str] = []
        if "actions" in self.capabilities:
            kind = alert.usage.device.kind.value
            actions = ["default", "Show details", "allow", "Allow once"]
            if alert.usage.process is not None:
                actions += ["kill", "Kill app"]
            actions += ["block", f"Block {kind}"]
        # The body may be read as markup (dunst does, even without "body-markup"): escape.
        body = "\n".join(html.escape(line, quote=False) for line in plain_body(alert))
        hints = {"urgency": ("y", URGENCY_CRITICAL), "category": ("s", "device"),
                 "desktop-entry": ("s", "camguard")}
        icon = self._icons.get(alert.usage.device.kind.value, self._icon)
        reply = self._call(router, call(
            server, "Notify", "susssasa{sv}i",
            ("camguard", 0, icon, _summary(alert), body, actions, hints,
             self._expire_ms)))
        if reply is None:
            self._fallback(alert)
            return
        nid = int(reply.body[0])
        self._ids[nid] = alert.id
        if not self._stopping.is_set():
            self.sent.emit(alert.id, nid)

    def _say(self, router: Any, server: Any, fb: Feedback) -> None:
        """One feedback notification, replacing the previous one: a burst of results is
        one line that changes, not a stack over the screen."""
        if self._stopping.is_set():
            return
        if fb.level is Level.INFO:
            icon = self._icons.get(fb.kind.value if fb.kind else "", self._icon)
        else:
            icon = self._icons.get(fb.level.value, self._icon)
        urgency = {Level.INFO: URGENCY_LOW, Level.WARNING: URGENCY_NORMAL,
                   Level.ERROR: URGENCY_CRITICAL}[fb.level]
        hints = {"urgency": ("y", urgency), "desktop-entry": ("s", "camguard"),
                 "category": ("s", "device.error" if fb.level is Level.ERROR else "device")}
        reply = self._call(router, new_method_call(
            server, "Notify", "susssasa{sv}i",
            ("camguard", self._feedback_id, icon, fb.title,
             html.escape(fb.text, quote=False), [], hints, FEEDBACK_EXPIRE_MS)))
        if reply is None:
            if not self._stopping.is_set():
                self.feedback_fallback.emit(fb)
            return
        self._feedback_id = int(reply.body[0])
        if not self._stopping.is_set():
            self.feedback_sent.emit(self._feedback_id)

    def _call(self, router: Any, msg: Any) -> Any:
        try:
            reply = router.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
        except Exception as exc:
            log.warning("notification daemon did not answer: %s", exc)
            return None
        if reply.header.message_type.name == "error":
            log.warning("notification daemon refused: %s", reply.body)
            return None
        return reply

    def _signal(self, bus: Any, msg: Any) -> None:
        fields = msg.header.fields
        member = fields.get(HeaderFields.member)
        sender = fields.get(HeaderFields.sender)
        if sender != self._owner:
            try:  # the daemon may have restarted under a new unique name
                self._owner = str(bus.GetNameOwner(NAME)[0])
            except Exception:
                return
            if sender != self._owner:
                log.warning("ignored %s from %s: not the notification daemon", member, sender)
                return
        if member == "ActionInvoked" and len(msg.body) == 2:
            alert_id = self._ids.get(int(msg.body[0]))
            key = str(msg.body[1])
            if alert_id is None or self._stopping.is_set():
                return  # someone else's notification, one we withdrew, or we are quitting
            if key == "default":
                self.details_requested.emit(alert_id)
            elif key in ACTIONS:
                self.decided.emit(alert_id, ACTIONS[key].value)
        elif member == "NotificationClosed" and msg.body:
            nid = int(msg.body[0])
            self._ids.pop(nid, None)
            if nid == self._feedback_id:
                self._feedback_id = 0
