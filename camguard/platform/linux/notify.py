"""Desktop notifications on Linux: org.freedesktop.Notifications over jeepney (Qt-free).

PySide6's QtDBus marshals Notify with the wrong signature (``sisssasa{sv}i``) and the
server rejects it, so jeepney speaks D-Bus here. One background thread owns the connection:
dunst sends ``ActionInvoked`` *to the connection that called Notify* (the signal's
destination is the caller's unique name; measured with dunst 1.9), so sending and listening
must share it. No session bus or no notification daemon is never an error: the channel
says so (``ready(False, why)``) and every notification it was handed is reported as
``failed`` so the caller can show it some other way. What the tray makes of all this is
camguard.ui.notifications (a :class:`~camguard.platform.base.NotificationEvents`).
"""

from __future__ import annotations

import html
import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

from jeepney import DBusAddress, HeaderFields, MatchRule, message_bus, new_method_call
from jeepney.io.threading import DBusRouter, Proxy, open_dbus_connection

from camguard.platform.base import NotificationEvents

log = logging.getLogger(__name__)

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
CALL_TIMEOUT = 3.0
URGENCY_CRITICAL = 2


class DBusNotifications:
    """A :class:`~camguard.platform.base.NotificationChannel` on the session bus (``bus``:
    "SESSION" or a D-Bus address). ``key`` is the caller's name for a notification (the
    tray's alert id). Every method but the events runs on the caller's thread and only
    queues; events come from this channel's thread and stop once :meth:`stop` was called.
    """

    def __init__(self, events: NotificationEvents, *, bus: str = "SESSION", icon: str = "",
                 expire_ms: int = -1) -> None:
        self._events = events
        self._bus = bus
        self._icon = icon
        self._expire_ms = expire_ms
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        # Set by stop(): the thread then reports nothing more (it may outlive stop() by a
        # few seconds while a call times out, and must not call into a caller torn down).
        self._stopping = threading.Event()
        self._ids: dict[int, int] = {}  # notification id -> key (channel thread only)
        self.capabilities: tuple[str, ...] = ()
        self.unique_name = ""  # this connection's bus name, once connected
        self._owner = ""

    # -- the caller's thread ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="camguard-notify",
                                            daemon=True)
            self._thread.start()

    def send(self, key: int, summary: str, lines: Sequence[str],
             actions: Sequence[tuple[str, str]]) -> None:
        self._queue.put(("notify", (key, summary, tuple(lines), tuple(actions))))

    def withdraw(self, key: int) -> None:
        self._queue.put(("close", key))

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    # -- the channel's thread --------------------------------------------------------------
    def _give_up(self, why: str) -> None:
        log.info("desktop notifications unavailable (%s); using the tray's messages", why)
        if not self._stopping.is_set():
            self._events.ready(False, why)
        while True:  # whatever was queued meanwhile goes the other way
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and item[0] == "notify" and not self._stopping.is_set():
                self._events.failed(item[1][0])

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
        if not self._stopping.is_set():
            self._events.ready(True, "")
        with router.filter(rule, queue=self._queue):
            while (item := self._queue.get()) is not None:
                if isinstance(item, tuple):
                    self._command(router, server, item)
                else:
                    self._signal(bus, item)

    def _command(self, router: Any, server: Any, item: tuple[str, Any]) -> None:
        call = new_method_call
        what, arg = item
        if what == "close":
            for nid, key in list(self._ids.items()):
                if key == arg:
                    del self._ids[nid]
                    self._call(router, call(server, "CloseNotification", "u", (nid,)))
            return
        key, summary, lines, pairs = arg
        actions: list[str] = []
        if "actions" in self.capabilities:
            for name, label in pairs:
                actions += [name, label]
        # The body may be read as markup (dunst does, even without "body-markup"): escape.
        body = "\n".join(html.escape(line, quote=False) for line in lines)
        hints = {"urgency": ("y", URGENCY_CRITICAL), "category": ("s", "device"),
                 "desktop-entry": ("s", "camguard")}
        reply = self._call(router, call(
            server, "Notify", "susssasa{sv}i",
            ("camguard", 0, self._icon, summary, body, actions, hints, self._expire_ms)))
        if reply is None:
            if not self._stopping.is_set():
                self._events.failed(key)
            return
        nid = int(reply.body[0])
        self._ids[nid] = key
        if not self._stopping.is_set():
            self._events.sent(key, nid)

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
            key = self._ids.get(int(msg.body[0]))
            if key is None or self._stopping.is_set():
                return  # someone else's notification, one we withdrew, or we are quitting
            self._events.action(key, str(msg.body[1]))
        elif member == "NotificationClosed" and msg.body:
            self._ids.pop(int(msg.body[0]), None)
