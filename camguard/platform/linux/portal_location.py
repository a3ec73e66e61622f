"""Flatpak apps' location, from the portal permission store (issue 11, item 3).

A sandboxed (Flatpak) app asks for location through xdg-desktop-portal, which asks GeoClue
itself: on the system bus the GeoClue client is the portal's, never the app's. The portal
keeps, per app, the granted accuracy and the time of the last start in the permission
store (``org.freedesktop.impl.portal.PermissionStore`` on the session bus, table
``location``, id ``location``): ``{app_id: [ACCURACY, LAST_USED]}``, ACCURACY one of NONE
(refused), COUNTRY, CITY, NEIGHBORHOOD, STREET, EXACT, LAST_USED the portal's
``g_get_monotonic_time()`` in microseconds (CLOCK_MONOTONIC: time since this boot; written
in an earlier boot it cannot be placed in time, which is said).

This source reads that table (``Lookup``) and follows its ``Changed`` signal: every app and
its grant go to the coverage (``status --json``: the ``apps`` of the ``location`` /
``portal`` entry); an app whose last use moved forward started using location just now,
reported as a location use (``via`` "portal") for one look, named by its Flatpak scope
(``app-flatpak-<app id>-<n>.scope``, the oldest process in it) when it still runs.

camguard never starts the permission store (NO_AUTO_START, as for GeoClue): on a desktop
with portals it runs from the first portal call of the session; not running, the coverage
says the grants were not read. The root service has no session bus; this source is not
run there as such: user_portal.py reads each account's grants through it, as the account
(coverage only; GeoClue's bus monitor names the portal as the location user there).
"""

from __future__ import annotations

import logging
import os
import selectors
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from camguard.core.coverage import AppGrant, Coverage, CoverageState
from camguard.core.models import Degraded, ProcessRef, SourceSnapshot, Usage
from camguard.platform.linux.geoclue_track import DEVICE, pump
from camguard.platform.linux.pw_graph import quote
from camguard.platform.linux.sandbox import flatpak_from_cgroup
from camguard.platform.linux.threaded_source import ThreadedSource
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

STORE = "org.freedesktop.impl.portal.PermissionStore"
STORE_PATH = "/org/freedesktop/impl/portal/PermissionStore"
TABLE = "location"
ROW = "location"
NO_AUTO_START = 0x2  # message header flag: never activate the store on our behalf
CALL_TIMEOUT = 2.0
RECEIVE_SLICE = 0.5
SHOWN_FOR = 1.0  # seconds a started use stays in the view (the store records starts only)
BACKOFF_CAP = 10.0
MAX_APPS = 512  # the store is the user's: never more than this many entries kept
ACCESS_LEVELS = ("NONE", "COUNTRY", "CITY", "NEIGHBORHOOD", "STREET", "EXACT")

Grants = dict[str, tuple[str, int | None]]  # app id -> (accuracy, last used, µs monotonic)


def parse_grants(perms: object) -> Grants:
    """The ``a{sas}`` of a Lookup (or Changed) as grants; malformed entries are skipped."""
    out: Grants = {}
    if not isinstance(perms, Mapping):
        return out
    for app, values in list(perms.items())[:MAX_APPS]:
        if not isinstance(app, str) or not isinstance(values, list | tuple) or not values:
            continue
        access = values[0] if isinstance(values[0], str) else ""
        used: int | None = None
        if len(values) > 1 and isinstance(values[1], str) and values[1].isascii() \
                and values[1].isdigit() and len(values[1]) <= 20:
            used = int(values[1])
        out[app] = (access[:32], used)
    return out


def wall_time(used_us: int | None, *, now: float | None = None,
              mono: float | None = None) -> tuple[float | None, str]:
    """The epoch time of a monotonic stamp in µs, and a note when it cannot be placed."""
    if not used_us:
        return None, "never used"
    now = time.time() if now is None else now
    mono = time.monotonic() if mono is None else mono
    seconds = used_us / 1e6
    if seconds > mono:
        return None, "last used before this boot (the portal's clock restarts at boot)"
    return now - (mono - seconds), "if in this boot (the portal's clock restarts at boot)"


def grants_of(grants: Grants) -> tuple[AppGrant, ...]:
    out = []
    for app, (access, used) in sorted(grants.items()):
        when, note = wall_time(used)
        shown = access if access in ACCESS_LEVELS else quote(access)
        out.append(AppGrant(app, shown, when, "" if access == "NONE" and not used else note))
    return tuple(out)


def started(before: Grants, after: Grants) -> list[str]:
    """Apps whose last use moved forward (they started location just now)."""
    out = []
    for app, (access, used) in after.items():
        old = before.get(app, ("", None))[1]
        if access != "NONE" and used and (old is None or used > old):
            out.append(app)
    return out


def flatpak_processes(app_id: str, proc_root: str = "/proc") -> list[int]:
    """Pids in the app's Flatpak scope, oldest (lowest start time) first."""
    found: list[tuple[int, int]] = []
    try:
        names = os.listdir(proc_root)
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc_root}/{name}/cgroup", "rb") as f:
                text = f.read(4096).decode("utf-8", "replace")
            if flatpak_from_cgroup(text) != app_id:
                continue
            with open(f"{proc_root}/{name}/stat", "rb") as f:
                stat = f.read(4096).rpartition(b")")[2].split()
            found.append((int(stat[19]), int(name)))  # field 22: starttime
        except (OSError, ValueError, IndexError):
            continue
    return [pid for _start, pid in sorted(found)]


class PortalLocationSource(ThreadedSource):
    """Flatpak apps' location grants and starts (module docstring).

    Threads: :meth:`snapshot` returns the watcher's cached view once started; never
    started, it asks the store once on the caller's thread (one call, at most
    ``CALL_TIMEOUT``). :meth:`start` starts ``camguard-portal``, which owns one session-bus
    connection and reconnects with back-off. :meth:`stop` joins it within about a second.
    """

    first_look_timeout = CALL_TIMEOUT
    first_look_missing = ""  # said by the coverage

    def __init__(self, describer: ProcessDescriber, *, bus: str = "SESSION",
                 name: str = "portal",
                 processes: Callable[[str], list[int]] = flatpak_processes) -> None:
        """``bus``: "SESSION" ($DBUS_SESSION_BUS_ADDRESS) or an address."""
        self.name = name
        self._describer = describer
        self._bus = bus
        self._processes = processes
        self._init_thread(SourceSnapshot(name))
        self._grants: Grants = {}
        self._state: tuple[CoverageState, str] | None = None

    def stop(self) -> None:
        self._stop_thread(RECEIVE_SLICE * 3)

    def coverage(self, last: SourceSnapshot | None = None) -> list[Coverage]:
        with self._lock:
            state = self._state
        if state is None:
            self.snapshot()
            with self._lock:
                state = self._state
        with self._lock:
            grants = dict(self._grants)
        st, why = state or (CoverageState.BLIND, "not asked")
        return [Coverage("location", self.name, st, why, grants_of(grants))]

    # -- one look ------------------------------------------------------------------------
    def _one_shot(self) -> SourceSnapshot:
        try:
            conn = self._connect()
        except OSError as exc:
            self._set(CoverageState.BLIND, f"no session bus ({exc}): Flatpak apps' "
                      "location grants are not known", {})
            return SourceSnapshot(self.name)
        try:
            self._set(*self._lookup(conn))
        except Exception as exc:  # a bus that answers nonsense: say so, never raise
            self._set(CoverageState.BLIND, f"permission store query failed ({exc})", {})
        finally:
            conn.close()
        return SourceSnapshot(self.name)

    # -- watcher thread ------------------------------------------------------------------
    def _run(self) -> None:
        delay, was_connected = 0.2, False
        while not self._stopping.is_set():
            try:
                connected, reason = self._watch()
            except Exception as exc:  # keep watching whatever happens
                log.exception("portal permission store watcher failed")
                connected, reason = False, f"internal error: {exc}"
            if self._stopping.is_set():
                break
            was_connected = was_connected or connected
            with self._lock:
                grants = dict(self._grants)
            self._set(CoverageState.BLIND, reason, grants)
            self._publish(SourceSnapshot(self.name, degraded=Degraded(self.name, reason)
                                         if was_connected else None))
            self._stopping.wait(delay)
            delay = min(delay * 2, BACKOFF_CAP)
        self._first_look.set()

    def _watch(self) -> tuple[bool, str]:
        from jeepney.bus_messages import MatchRule, message_bus

        try:
            conn = self._connect()
        except OSError as exc:
            return False, f"no session bus ({exc})"
        try:
            rule = MatchRule(type="signal", interface=STORE, member="Changed", path=STORE_PATH)
            rule.add_arg_condition(0, TABLE)
            # The store starting (or restarting) later: read it then.
            owner = MatchRule(type="signal", sender="org.freedesktop.DBus",
                              member="NameOwnerChanged")
            owner.add_arg_condition(0, STORE)
            for r in (rule, owner):
                conn.send_and_get_reply(message_bus.AddMatch(r), timeout=CALL_TIMEOUT)
            self._set(*self._lookup(conn))
            self._publish(SourceSnapshot(self.name))
            signals: deque[Any] = deque()
            shown_until = 0.0
            with conn.filter(rule, queue=signals), conn.filter(owner, queue=signals), \
                    selectors.DefaultSelector() as sel:
                sel.register(conn.sock, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    sel.select(RECEIVE_SLICE if not shown_until else
                               max(0.0, min(RECEIVE_SLICE, shown_until - time.monotonic())))
                    pump(conn)  # its filter queues the signals
                    if signals:
                        signals.clear()
                        with self._lock:
                            before = dict(self._grants)
                            known = self._state is not None \
                                and self._state[0] is CoverageState.WATCHING
                        self._set(*self._lookup(conn))
                        with self._lock:
                            after = dict(self._grants)
                        # Read for the first time (the store just started): a baseline.
                        uses = [self._use(app, after[app][0])
                                for app in (started(before, after) if known else ())]
                        if uses:
                            self._publish(SourceSnapshot(self.name, frozenset({DEVICE}),
                                                         frozenset(uses)))
                            shown_until = time.monotonic() + SHOWN_FOR
                    if shown_until and time.monotonic() >= shown_until:
                        shown_until = 0.0
                        self._publish(SourceSnapshot(self.name))
            return True, "stopped"
        except (OSError, ConnectionError) as exc:
            return True, f"session bus connection lost ({exc})"
        finally:
            conn.close()

    # -- helpers ---------------------------------------------------------------------------
    def _use(self, app: str, access: str) -> Usage:
        pids = self._processes(app)
        ref: ProcessRef | None = None
        for pid in pids:
            ref = self._describer.describe(pid)
            if ref is not None:
                break
        note = f"Flatpak app {quote(app)} through the location portal (accuracy " \
               f"{access if access in ACCESS_LEVELS else quote(access)})"
        if ref is None:
            note += "; its process is not running or not visible"
        return Usage(DEVICE, ref, note=note, via="portal")

    def _lookup(self, conn: Any) -> tuple[CoverageState, str, Grants]:
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call

        msg = new_method_call(DBusAddress(STORE_PATH, bus_name=STORE, interface=STORE),
                              "Lookup", "ss", (TABLE, ROW))
        msg.header.flags |= NO_AUTO_START
        reply = conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT)
        if reply.header.message_type is MessageType.error:
            error = str(reply.header.fields.get(HeaderFields.error_name, ""))
            if error.endswith(".NotFound"):
                return (CoverageState.WATCHING, "no Flatpak app has asked for location "
                        "(the permission store has no location table yet)", {})
            if error in ("org.freedesktop.DBus.Error.ServiceUnknown",
                         "org.freedesktop.DBus.Error.NameHasNoOwner"):
                return (CoverageState.BLIND, "the portal permission store is not running "
                        "(no portal was used this session): Flatpak apps' location grants "
                        "were not read", {})
            why = " ".join(str(b) for b in reply.body) or error or "an error"
            return CoverageState.BLIND, f"the portal permission store answered {why}", {}
        grants = parse_grants(reply.body[0] if reply.body else None)
        return (CoverageState.WATCHING, f"Flatpak apps starting location through the portal "
                f"are named (permission store: {len(grants)} apps with a location grant)",
                grants)

    def _set(self, state: CoverageState, why: str, grants: Grants) -> None:
        with self._lock:
            self._state = (state, why)
            self._grants = grants

    def _connect(self) -> Any:
        from jeepney.io.blocking import open_dbus_connection

        try:
            return open_dbus_connection(bus=self._bus, auth_timeout=CALL_TIMEOUT)
        except (OSError, KeyError, ValueError) as exc:  # no socket, or no address for it
            raise OSError(str(exc) or type(exc).__name__) from exc


