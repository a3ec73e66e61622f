"""Location uses through GeoClue2, watched on the system bus.

GeoClue hands out location to *clients*: an app calls ``Manager.GetClient`` (or
``CreateClient``), sets ``DesktopId`` and ``RequestedAccuracyLevel`` on its client object and
calls ``Start``; it uses location until ``Stop``, ``DeleteClient`` or until it leaves the bus.
GeoClue tells no one which process owns a client, so camguard watches the calls themselves:

* as root, ``org.freedesktop.DBus.Monitoring.BecomeMonitor`` with matches for calls to
  ``org.freedesktop.GeoClue2`` and its replies, and ``NameOwnerChanged``; the caller's pid
  comes from ``GetConnectionUnixProcessID`` (the bus asks the kernel, SO_PEERCRED). The
  desktop id is the app's own claim and shown as such;
* without root the bus refuses monitoring: only ``Manager.InUse`` can be read, so a use is
  "in use by a process camguard cannot see", and the coverage says "partial".

camguard never starts GeoClue (every call it makes carries NO_AUTO_START): GeoClue not
running means nothing uses location. The tracker (:class:`Tracker`) is pure; the source owns
the connections (jeepney, already a dependency).
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import (
    UNSEEN_PROCESS_NOTE,
    Degraded,
    Device,
    DeviceKind,
    ProcessRef,
    SourceSnapshot,
    Usage,
)
from camguard.platform.base import Wake
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

GEOCLUE = "org.freedesktop.GeoClue2"
MANAGER_PATH = "/org/freedesktop/GeoClue2/Manager"
CLIENT_IFACE = "org.freedesktop.GeoClue2.Client"
MANAGER_IFACE = "org.freedesktop.GeoClue2.Manager"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
NO_AUTO_START = 0x2  # message header flag: never activate GeoClue on our behalf
CALL_TIMEOUT = 1.0
RECEIVE_SLICE = 0.5
BACKOFF_CAP = 10.0
# GClueAccuracyLevel (geoclue's gclue-enums.h).
ACCURACY = {0: "none", 1: "country", 4: "city", 5: "neighborhood", 6: "street", 8: "exact"}
QUOTE_LIMIT = 64
DEVICE = Device(DeviceKind.LOCATION, "geoclue", name="Location (GeoClue)", path=None,
                source="geoclue")
NOT_ROOT = ("bus monitoring needs root: only whether location is in use is known "
            "(GeoClue's InUse), not by whom")
Describe = Callable[[int], ProcessRef | None]


@dataclass
class Client:
    owner: str  # the unique bus name of the app that asked for it
    pid: int | None = None
    desktop_id: str = ""
    accuracy: int | None = None
    active: bool = False


@dataclass
class Tracker:
    """GeoClue's clients as seen in the monitored calls (pure: fed plain values)."""

    clients: dict[str, Client] = field(default_factory=dict)
    # (caller, serial) -> what the call was: ("get", "") or ("start"|"stop", path)
    pending: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)

    def call(self, sender: str, serial: int, *, path: str, iface: str, member: str,
             body: tuple[Any, ...]) -> bool:
        """A method call to GeoClue; returns whether a use may have changed."""
        if path == MANAGER_PATH and member in ("GetClient", "CreateClient"):
            self.pending[(sender, serial)] = ("get", "")
        elif path == MANAGER_PATH and member == "DeleteClient" and body:
            gone = self.clients.get(str(body[0]))
            if gone is not None and gone.owner == sender:
                del self.clients[str(body[0])]
                return gone.active
        elif member in ("Start", "Stop") and path in self.clients \
                and self.clients[path].owner == sender:
            self.pending[(sender, serial)] = (member.lower(), path)
        elif iface == PROPS_IFACE and member == "Set" and path in self.clients \
                and len(body) == 3 and body[0] == CLIENT_IFACE:
            client = self.clients[path]
            if client.owner != sender:
                return False
            value = body[2][1] if isinstance(body[2], tuple) and len(body[2]) == 2 else None
            if body[1] == "DesktopId" and isinstance(value, str):
                client.desktop_id = value
            elif body[1] == "RequestedAccuracyLevel" and isinstance(value, int):
                client.accuracy = value
            return client.active
        return False

    def reply(self, destination: str, reply_serial: int, body: tuple[Any, ...],
              error: bool, pid_of: Callable[[str], int | None]) -> bool:
        what = self.pending.pop((destination, reply_serial), None)
        if what is None or error:
            return False
        kind, path = what
        if kind == "get":
            if body and isinstance(body[0], str) and body[0] not in self.clients:
                self.clients[body[0]] = Client(destination, pid_of(destination))
            return False
        client = self.clients.get(path)
        if client is None:
            return False
        was, client.active = client.active, kind == "start"
        return was != client.active

    def vanished(self, name: str) -> bool:
        """A bus name left: its clients end (GeoClue drops them too)."""
        gone = [p for p, c in self.clients.items() if c.owner == name]
        for p in gone:
            del self.clients[p]
        self.pending = {k: v for k, v in self.pending.items() if k[0] != name}
        return bool(gone)

    def usages(self, describe: Describe) -> set[Usage]:
        out = set()
        for c in self.clients.values():
            if not c.active:
                continue
            ref = describe(c.pid) if c.pid is not None else None
            notes = []
            if c.desktop_id:
                notes.append(f"desktop id {_quote(c.desktop_id)} (as the app claims)")
            if c.accuracy is not None:
                notes.append(f"accuracy: {ACCURACY.get(c.accuracy, str(c.accuracy))}")
            if ref is None:
                notes.insert(0, f"a GeoClue client camguard cannot see (bus name {c.owner})")
            out.add(Usage(DEVICE, ref, note="; ".join(notes), via="geoclue"))
        return out


def _quote(value: str) -> str:
    if len(value) > QUOTE_LIMIT:
        value = value[:QUOTE_LIMIT] + f"… ({len(value)} characters)"
    return f"'{value}'"


class GeoClueSource:
    """Location uses (module docstring).

    Threads: :meth:`snapshot` returns the watcher's cached view once started; never started,
    it asks the bus once on the caller's thread (NameHasOwner, InUse: about a millisecond,
    at most ``CALL_TIMEOUT`` each). :meth:`start` starts ``camguard-geoclue``, which owns two
    connections: a monitor (as root) and an ordinary one for pids and InUse; it reconnects
    with back-off when the bus goes away. :meth:`stop` joins it within about a second.
    """

    def __init__(self, describer: ProcessDescriber, *, bus: str = "SYSTEM",
                 name: str = "geoclue") -> None:
        """``bus``: "SYSTEM" ($DBUS_SYSTEM_BUS_ADDRESS, else the system bus) or an address."""
        self.name = name
        self._describer = describer
        self._bus = bus
        self._lock = threading.Lock()
        self._cached = SourceSnapshot(name)
        self._state: tuple[CoverageState, str] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._wake: Wake | None = None

    # -- UsageSource ---------------------------------------------------------------------
    def snapshot(self) -> SourceSnapshot:
        with self._lock:
            if self._thread is not None:
                return self._cached
        return self._one_shot()

    def start(self, wake: Wake) -> None:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"source {self.name} already started")
            self._stopping.clear()
            self._ready.clear()
            self._wake = wake
            self._thread = threading.Thread(target=self._run, name=f"camguard-{self.name}",
                                            daemon=True)
            thread = self._thread
        thread.start()
        self._ready.wait(CALL_TIMEOUT * 3)

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        thread.join(RECEIVE_SLICE * 3)
        with self._lock:
            self._thread = None
            self._wake = None

    def coverage(self, last: SourceSnapshot | None = None) -> list[Coverage]:
        with self._lock:
            state = self._state
        if state is None:
            self.snapshot()
            with self._lock:
                state = self._state
        st, why = state or (CoverageState.BLIND, "not asked")
        return [Coverage("location", self.name, st, why)]

    # -- one look ------------------------------------------------------------------------
    def _one_shot(self) -> SourceSnapshot:
        try:
            conn = self._connect()
        except OSError as exc:
            self._set_state(CoverageState.BLIND, f"no system bus ({exc})")
            return SourceSnapshot(self.name)
        try:
            running, in_use = _in_use(conn)
        except Exception as exc:  # a bus that answers nonsense: say so, never raise
            self._set_state(CoverageState.BLIND, f"system bus query failed ({exc})")
            return SourceSnapshot(self.name)
        finally:
            conn.close()
        self._set_state(*_state(running, watching=False))
        usages = {Usage(DEVICE, None, note=UNSEEN_PROCESS_NOTE, via="geoclue")} \
            if in_use else set()
        return SourceSnapshot(self.name, frozenset({DEVICE}) if running else frozenset(),
                              frozenset(usages))

    # -- watcher thread ------------------------------------------------------------------
    def _run(self) -> None:
        delay, was_connected = 0.2, False
        while not self._stopping.is_set():
            try:
                connected, reason = self._watch()
            except Exception as exc:  # keep watching whatever happens
                log.exception("GeoClue watcher failed")
                connected, reason = False, f"internal error: {exc}"
            if self._stopping.is_set():
                break
            was_connected = was_connected or connected
            self._set_state(CoverageState.BLIND, reason)
            self._publish(SourceSnapshot(self.name, degraded=Degraded(self.name, reason)
                                         if was_connected else None))
            self._stopping.wait(delay)
            delay = min(delay * 2, BACKOFF_CAP)
        self._ready.set()

    def _watch(self) -> tuple[bool, str]:
        from jeepney import HeaderFields
        from jeepney.bus_messages import MatchRule, message_bus

        try:
            query = self._connect()
        except OSError as exc:
            return False, f"no system bus ({exc})"
        monitor = None
        try:
            for rule in (MatchRule(type="signal", sender="org.freedesktop.DBus",
                                   member="NameOwnerChanged"),
                         MatchRule(type="signal", interface=PROPS_IFACE,
                                   member="PropertiesChanged", path=MANAGER_PATH)):
                query.send_and_get_reply(message_bus.AddMatch(rule), timeout=CALL_TIMEOUT)
            monitor = self._monitor() if os.geteuid() == 0 else None
            tracker = Tracker()
            running, in_use = _in_use(query)
            self._set_state(*_state(running, watching=monitor is not None))
            self._publish(self._build(tracker, running, in_use))

            def pid_of(name: str) -> int | None:
                try:
                    r = query.send_and_get_reply(
                        message_bus.GetConnectionUnixProcessID(name), timeout=CALL_TIMEOUT)
                except (OSError, TimeoutError):
                    return None
                pid = r.body[0] if r.body else None
                return pid if isinstance(pid, int) and pid > 0 else None

            conns = [c for c in (query, monitor) if c is not None]
            with selectors.DefaultSelector() as sel:
                for conn in conns:
                    sel.register(conn.sock, selectors.EVENT_READ, conn)
                while not self._stopping.is_set():
                    changed = False
                    for key, _ in sel.select(RECEIVE_SLICE):
                        for msg in _drain(key.data):
                            if key.data is monitor:
                                changed |= _monitored(tracker, msg, pid_of)
                                continue
                            member = msg.header.fields.get(HeaderFields.member)
                            if member == "NameOwnerChanged" and len(msg.body) == 3:
                                name, _old, new = msg.body
                                if name == GEOCLUE:
                                    changed = True
                                    if not new:
                                        tracker = Tracker()
                                elif not new:
                                    changed |= tracker.vanished(str(name))
                            elif member == "PropertiesChanged":
                                changed = True
                    if changed:
                        running, in_use = _in_use(query)
                        self._set_state(*_state(running, watching=monitor is not None))
                        self._publish(self._build(tracker, running, in_use))
            return True, "stopped"
        except (OSError, ConnectionError) as exc:
            return True, f"system bus connection lost ({exc})"
        finally:
            query.close()
            if monitor is not None:
                monitor.close()

    def _monitor(self) -> Any:
        """A connection that became a bus monitor of GeoClue's calls; None if refused."""
        from jeepney import MessageType
        from jeepney.bus_messages import Monitoring

        monitor = self._connect()
        rules = [f"type='method_call',destination='{GEOCLUE}'",
                 f"type='method_return',sender='{GEOCLUE}'",
                 f"type='error',sender='{GEOCLUE}'"]
        try:
            reply = monitor.send_and_get_reply(Monitoring().BecomeMonitor(rules),
                                               timeout=CALL_TIMEOUT)
        except (OSError, TimeoutError):
            monitor.close()
            raise
        if reply.header.message_type is MessageType.error:
            log.info("the bus refused monitoring: %s", reply.body)
            monitor.close()
            return None
        return monitor

    def _build(self, tracker: Tracker, running: bool, in_use: bool) -> SourceSnapshot:
        if not in_use:  # GeoClue says no client is active: trust it over a missed Stop
            for client in tracker.clients.values():
                client.active = False
        usages = tracker.usages(self._describer.describe)
        if in_use and not usages:
            # In use, but by a client camguard did not see start (no monitor, or it began
            # before camguard): say so rather than "idle".
            usages = {Usage(DEVICE, None, note=UNSEEN_PROCESS_NOTE, via="geoclue")}
        return SourceSnapshot(self.name, frozenset({DEVICE}) if running else frozenset(),
                              frozenset(usages))

    def _publish(self, snap: SourceSnapshot) -> None:
        with self._lock:
            changed = snap != self._cached or snap.degraded != self._cached.degraded
            self._cached = snap
            wake = self._wake
        self._ready.set()
        if changed and wake is not None:
            try:
                wake()
            except Exception:
                log.exception("wake-up callback of source %s failed", self.name)

    def _set_state(self, state: CoverageState, why: str) -> None:
        with self._lock:
            self._state = (state, why)

    def _connect(self) -> Any:
        from jeepney.io.blocking import open_dbus_connection

        try:
            return open_dbus_connection(bus=self._bus, auth_timeout=CALL_TIMEOUT)
        except (OSError, KeyError, ValueError) as exc:  # no socket, or no address for it
            raise OSError(str(exc) or type(exc).__name__) from exc


def _drain(conn: Any) -> Iterator[Any]:
    """Every message the connection has now (the socket was readable)."""
    while True:
        try:
            yield conn.receive(timeout=0)
        except TimeoutError:
            return


def _monitored(tracker: Tracker, msg: Any, pid_of: Callable[[str], int | None]) -> bool:
    from jeepney import HeaderFields, MessageType

    h, f = msg.header, msg.header.fields
    if h.message_type is MessageType.method_call:
        return tracker.call(str(f.get(HeaderFields.sender, "")), h.serial,
                            path=str(f.get(HeaderFields.path, "")),
                            iface=str(f.get(HeaderFields.interface, "")),
                            member=str(f.get(HeaderFields.member, "")), body=tuple(msg.body))
    if h.message_type in (MessageType.method_return, MessageType.error):
        serial = f.get(HeaderFields.reply_serial, 0)
        return tracker.reply(str(f.get(HeaderFields.destination, "")),
                             serial if isinstance(serial, int) else 0, tuple(msg.body),
                             h.message_type is MessageType.error, pid_of)
    return False


def _in_use(conn: Any) -> tuple[bool, bool]:
    """(GeoClue running, its Manager.InUse), without ever starting it."""
    from jeepney import DBusAddress, MessageType, Properties
    from jeepney.bus_messages import message_bus

    has = conn.send_and_get_reply(message_bus.NameHasOwner(GEOCLUE), timeout=CALL_TIMEOUT)
    if not (has.body and has.body[0]):
        return False, False
    msg = Properties(DBusAddress(MANAGER_PATH, bus_name=GEOCLUE,
                                 interface=MANAGER_IFACE)).get("InUse")
    msg.header.flags |= NO_AUTO_START
    reply = conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
    if reply.header.message_type is MessageType.error or not reply.body:
        return True, False
    value = reply.body[0]
    return True, bool(value[1]) if isinstance(value, tuple) and len(value) == 2 else False


def _state(running: bool, *, watching: bool) -> tuple[CoverageState, str]:
    if not watching:
        why = NOT_ROOT if os.geteuid() != 0 else "bus monitoring refused"
        return CoverageState.PARTIAL, why + ("" if running else "; GeoClue not running")
    if not running:
        return CoverageState.WATCHING, "GeoClue not running (nothing uses location)"
    return CoverageState.WATCHING, "GeoClue clients are named (bus monitor, kernel pid)"
