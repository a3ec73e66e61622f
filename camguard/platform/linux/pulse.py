"""Microphone usages from the sound server: PulseAudio, or PipeWire through pipewire-pulse.

Apps never open ``/dev/snd`` themselves on a desktop; the sound server does, so only the
server can say which app records. Its recording streams ("source outputs") and their
clients name the app; :mod:`camguard.platform.linux.pulse_props` turns them into usages.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from camguard.core.coverage import Coverage
from camguard.core.models import Degraded, SourceSnapshot
from camguard.core.settings import DEFAULT_SOUND_SERVER_EXES
from camguard.platform.linux.coverage import pulse_coverage
from camguard.platform.linux.pulse_conn import close_quietly, connect, context_error, load_pulsectl
from camguard.platform.linux.pulse_props import (
    INVALID_INDEX,
    ClientInfo,
    ServerView,
    SourceInfo,
    StreamInfo,
    build_snapshot,
    server_pids,
)
from camguard.platform.linux.threaded_source import ThreadedSource
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

# A local server answers in milliseconds; one that has not answered in a second is hung
# (e.g. stopped with SIGSTOP: the kernel still accepts the socket, nobody speaks).
CONNECT_TIMEOUT = 1.0
# event_listen() wakes this often even without events, so a lost event_listen_stop() (it is
# racy, see pulsectl's docstring) delays stop() by at most this much.
LISTEN_SLICE = 0.5
BACKOFF_START = 0.1
BACKOFF_CAP = 2.0
STOP_TIMEOUT = 1.0
# start() waits this long for the first look, so the monitor's first snapshot is complete.
FIRST_LOOK_TIMEOUT = CONNECT_TIMEOUT + 1.0
# Recording streams, the clients that own them, and sources (microphones plugged in or out).
EVENT_MASKS = ("source_output", "client", "source")


class _Unreachable(Exception):
    """Connecting failed; the message is the reason shown to the user."""


class _Connection:
    """One pulsectl connection and what it has learned; used by one thread at a time.

    Sources and clients are cached and fetched again only when an event names them: listing
    every client costs ~3 ms on PipeWire (40 properties each, converted by pulsectl one
    ctypes call at a time), which would be most of the mic-to-event budget.
    """

    def __init__(self, pulse: Any, is_pipewire: bool, bridge_pids: frozenset[int]) -> None:
        self.pulse = pulse
        self.is_pipewire = is_pipewire
        self.bridge_pids = bridge_pids
        self.dirty = True  # an event came since the last look
        self._sources: tuple[SourceInfo, ...] | None = None
        self._clients: dict[int, ClientInfo] = {}
        # Set by events, applied at the start of the next look: an event dispatched while a
        # look is querying must not be overwritten by that look's (older) answer.
        self._stale_sources = True
        self._stale_clients: set[int] = set()

    def on_event(self, event: Any) -> None:
        """pulsectl's event callback: runs inside its dispatch, so no pulse calls here."""
        self.dirty = True
        if event.facility == "source":
            self._stale_sources = True
        elif event.facility == "client":
            self._stale_clients.add(int(event.index))
        raise load_pulsectl().PulseLoopStop

    def look(self) -> ServerView:
        pulse = self.pulse
        self.dirty = False
        if self._stale_sources:
            self._stale_sources, self._sources = False, None
        for index in self._stale_clients:
            self._clients.pop(index, None)
        self._stale_clients.clear()
        # Streams first: whatever a listed stream points at existed when it was listed.
        streams = tuple(
            StreamInfo(index=so.index, source=_index(so.source), client=_index(so.client),
                       corked=bool(so.corked), owner_module=_index(so.owner_module),
                       props=dict(so.proplist))
            for so in pulse.source_output_list())
        if self._sources is None:
            self._sources = tuple(
                SourceInfo(index=s.index, name=_str(s.name), description=_str(s.description),
                           monitor_of_sink=_index(s.monitor_of_sink), props=dict(s.proplist))
                for s in pulse.source_list())
        wanted = {s.client for s in streams if not s.corked and s.client != INVALID_INDEX}
        for index in sorted(wanted - self._clients.keys()):
            client = self._client(index)
            if client is not None:
                self._clients[index] = client
        return ServerView(self.is_pipewire, self._sources, streams,
                          tuple(self._clients[i] for i in sorted(wanted & self._clients.keys())),
                          self.bridge_pids)

    def _client(self, index: int) -> ClientInfo | None:
        pulsectl = load_pulsectl()
        try:
            c = self.pulse.client_info(index)
        except pulsectl.PulseError:
            if not self.pulse.connected:
                raise
            return None  # the client left after its stream was listed
        return ClientInfo(index=c.index, name=_str(c.name), props=dict(c.proplist))


class PulseSource(ThreadedSource):
    """Recording streams on the sound server, as microphone usages (see the module docstring).

    Threads:

    * :meth:`snapshot` runs on the monitor thread (or the caller's). Once started it only
      copies the cached view under a lock (microseconds). Never started, it connects, queries
      and disconnects on the caller's thread: milliseconds, or ``CONNECT_TIMEOUT`` for a
      dead or hung server. It never raises: an unreachable server is a ``degraded`` snapshot.
    * :meth:`start` starts the watcher thread ``camguard-<name>`` and waits (at most
      ``FIRST_LOOK_TIMEOUT``) for its first look. The watcher owns its own
      ``pulsectl.Pulse`` connection (pulsectl objects are not thread-safe; no other thread
      makes a pulse call on it). It subscribes to streams, clients and sources; each event
      stops ``event_listen`` (pulse calls are forbidden inside the callback), then the
      watcher queries on the same connection, describes the processes through ``/proc``,
      caches the result and calls ``wake()`` if the view changed. A dead server makes it
      publish a degraded view and reconnect with back-off (0.1 s doubling to 2 s); on
      reconnect it looks again and wakes.
    * :meth:`stop` runs on the caller's thread: it flags the watcher, interrupts
      ``event_listen`` (``event_listen_stop`` under the lock that guards the connection's
      lifetime, repeated because it is racy) and joins within about a second.
    """

    first_look_timeout = FIRST_LOOK_TIMEOUT
    first_look_missing = "sound server gave no first answer"

    def __init__(self, describer: ProcessDescriber, server: str | None = None,
                 name: str = "pulse", *,
                 server_exes: tuple[str, ...] = DEFAULT_SOUND_SERVER_EXES) -> None:
        """``server`` None is libpulse's default (``$PULSE_SERVER``, client.conf, the
        user's runtime socket). ``server_exes`` are the executables whose kernel-given pid
        names the pulse bridge rather than an app."""
        self.name = name
        self._describer = describer
        self._server = server
        self._server_exes = server_exes
        # What snapshot() says if start() gave up waiting for the first look.
        self._init_thread(SourceSnapshot(name, degraded=Degraded(
            name, "sound server unreachable: no answer yet")))
        self._pulse: Any = None  # the watcher's live pulsectl.Pulse, for stop() to interrupt

    # -- UsageSource ---------------------------------------------------------------------
    def stop(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        deadline = time.monotonic() + STOP_TIMEOUT
        while thread.is_alive() and time.monotonic() < deadline:
            with self._lock:
                if self._pulse is not None:
                    self._pulse.event_listen_stop()
            thread.join(0.02)
        if thread.is_alive():  # a daemon thread: it cannot keep the process alive
            log.warning("sound-server watcher did not stop within %.1f s", STOP_TIMEOUT)
        with self._lock:
            self._thread = None
            self._wake = None

    def coverage(self, last: SourceSnapshot | None) -> list[Coverage]:
        return pulse_coverage(self.name, last)

    # -- one-shot ------------------------------------------------------------------------
    def _one_shot(self) -> SourceSnapshot:
        try:
            conn = self._connect()
        except _Unreachable as exc:
            return self._degraded(str(exc))
        try:
            return self._build(conn)
        except Exception as exc:  # pulsectl raises bare CallError & co; never reach the caller
            log.debug("one-shot sound-server query failed", exc_info=True)
            return self._degraded(f"query failed: {exc}")
        finally:
            conn.pulse.close()

    # -- watcher thread --------------------------------------------------------------------
    def _run(self) -> None:
        delay = BACKOFF_START
        announced = False  # log an outage once, not at every retry
        while not self._stopping.is_set():
            try:
                reason, was_connected = self._watch()
            except Exception as exc:  # the watcher must survive anything and keep retrying
                log.exception("sound-server watcher failed")
                reason, was_connected = f"internal error: {exc}", False
            if self._stopping.is_set():
                break
            if was_connected:
                delay, announced = BACKOFF_START, False
            if not announced:
                log.warning("sound server unreachable: %s (retrying)", reason)
                announced = True
            self._publish(self._degraded(reason))
            self._stopping.wait(delay)
            delay = min(delay * 2, BACKOFF_CAP)
        self._first_look.set()

    def _watch(self) -> tuple[str, bool]:
        """Connect and follow events until the server goes away or stop() is called.

        Returns why the connection ended and whether it had been established.
        """
        try:
            conn = self._connect()
        except _Unreachable as exc:
            return str(exc), False
        pulsectl = load_pulsectl()
        with self._lock:
            self._pulse = conn.pulse
        try:
            conn.pulse.event_mask_set(*EVENT_MASKS)
            conn.pulse.event_callback_set(conn.on_event)
            while not self._stopping.is_set():
                if conn.dirty:
                    # look() clears the flag before it queries: an event that arrives while
                    # it runs is dispatched inside it (pulsectl then resets its own stop flag
                    # and would lose it) and must bring another look.
                    self._publish(self._build(conn))
                    log.debug("sound server view refreshed")
                    continue
                conn.pulse.event_listen(timeout=LISTEN_SLICE)
            return "stopped", True
        except pulsectl.PulseDisconnected:
            return f"connection lost ({context_error(conn.pulse) or 'disconnected'})", True
        except Exception as exc:  # a failed query on a dying server: reconnect and look again
            log.debug("sound-server watch ended", exc_info=True)
            return f"connection lost ({context_error(conn.pulse) or exc})", True
        finally:
            with self._lock:
                self._pulse = None
                conn.pulse.close()

    # -- talking to the server (whichever thread owns the connection) -----------------------
    def _connect(self) -> _Connection:
        pulse: Any = None
        try:
            # os.urandom is what secrets.token_hex reads; secrets itself costs ~4 ms to
            # import (hmac, hashlib) at every `status` (issue 16).
            client_name = f"camguard-{os.urandom(6).hex()}"
            pulse = connect(self._server, client_name, CONNECT_TIMEOUT)
            info = pulse.server_info()
        except (ImportError, OSError) as exc:
            raise _Unreachable(f"libpulse is not available ({exc})") from exc
        except Exception as exc:  # pulsectl's PulseError, CallError, ...
            close_quietly(pulse)
            raise _Unreachable(f"{exc} ({self._where()})") from exc
        try:
            server_name = info.server_name if isinstance(info.server_name, str) else ""
            # pipewire-pulse calls itself "PulseAudio (on PipeWire 0.3.65)".
            is_pipewire = "pipewire" in server_name.lower()
            bridge = frozenset[int]()
            if is_pipewire:
                clients = [ClientInfo(index=c.index, name=_str(c.name), props=dict(c.proplist))
                           for c in pulse.client_list()]
                bridge = server_pids(is_pipewire, clients, client_name)
        except Exception as exc:
            pulse.close()
            raise _Unreachable(f"connection lost ({exc})") from exc
        return _Connection(pulse, is_pipewire, bridge)

    def _build(self, conn: _Connection) -> SourceSnapshot:
        return build_snapshot(self.name, conn.look(), self._describer.describe,
                              self._server_exes)

    def _degraded(self, reason: str) -> SourceSnapshot:
        return SourceSnapshot(self.name, degraded=Degraded(
            self.name, f"sound server unreachable: {reason}"))

    def _where(self) -> str:
        return self._server or os.environ.get("PULSE_SERVER") or "default server"


def _index(value: object) -> int:
    return value if isinstance(value, int) else INVALID_INDEX


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
