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
running means nothing uses location. The tracker (:mod:`.geoclue_track`) is pure; the source owns
the connections (jeepney, already a dependency).
"""

from __future__ import annotations

import logging
import os
import selectors
from collections import deque
from typing import Any

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import (
    UNSEEN_PROCESS_NOTE,
    Degraded,
    SourceSnapshot,
    Usage,
)
from camguard.platform.linux.geoclue_track import (
    DEVICE,
    GEOCLUE,
    MANAGER_IFACE,
    MANAGER_PATH,
    PROPS_IFACE,
    Tracker,
    drain,
    monitored,
    on_signal,
    pump,
)
from camguard.platform.linux.threaded_source import ThreadedSource
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

NO_AUTO_START = 0x2  # message header flag: never activate GeoClue on our behalf
CALL_TIMEOUT = 1.0
RECEIVE_SLICE = 0.5
BACKOFF_CAP = 10.0
NOT_ROOT = ("bus monitoring needs root: only whether location is in use is known "
            "(GeoClue's InUse), not by whom")


class GeoClueSource(ThreadedSource):
    """Location uses (module docstring).

    Threads: :meth:`snapshot` returns the watcher's cached view once started; never started,
    it asks the bus once on the caller's thread (NameHasOwner, InUse: about a millisecond,
    at most ``CALL_TIMEOUT`` each). :meth:`start` starts ``camguard-geoclue``, which owns two
    connections: a monitor (as root) and an ordinary one for pids and InUse; it reconnects
    with back-off when the bus goes away. :meth:`stop` joins it within about a second.
    """

    first_look_timeout = CALL_TIMEOUT * 3
    first_look_missing = ""  # said by the coverage instead

    def __init__(self, describer: ProcessDescriber, *, bus: str = "SYSTEM",
                 name: str = "geoclue") -> None:
        """``bus``: "SYSTEM" ($DBUS_SYSTEM_BUS_ADDRESS, else the system bus) or an address."""
        self.name = name
        self._describer = describer
        self._bus = bus
        self._init_thread(SourceSnapshot(name))
        self._state: tuple[CoverageState, str] | None = None

    # -- UsageSource ---------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_thread(RECEIVE_SLICE * 3)

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
        self._first_look.set()

    def _watch(self) -> tuple[bool, str]:
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

            # Signals land here even while a call waits for its reply (jeepney hands
            # what is not the reply to the filters), so a NameOwnerChanged is never lost.
            signals: deque[Any] = deque()
            with query.filter(MatchRule(type="signal"), queue=signals), \
                    selectors.DefaultSelector() as sel:
                for conn in (query, monitor):
                    if conn is not None:
                        sel.register(conn.sock, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    sel.select(RECEIVE_SLICE)
                    changed = False
                    if monitor is not None:  # every message it has, read or buffered
                        for msg in drain(monitor):
                            changed |= monitored(tracker, msg, pid_of)
                    pump(query)
                    while signals:
                        moved, geoclue_left = on_signal(tracker, signals.popleft())
                        changed |= moved
                        if geoclue_left:
                            tracker = Tracker()
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

    def _set_state(self, state: CoverageState, why: str) -> None:
        with self._lock:
            self._state = (state, why)

    def _connect(self) -> Any:
        from jeepney.io.blocking import open_dbus_connection

        try:
            return open_dbus_connection(bus=self._bus, auth_timeout=CALL_TIMEOUT)
        except (OSError, KeyError, ValueError) as exc:  # no socket, or no address for it
            raise OSError(str(exc) or type(exc).__name__) from exc


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
