"""Microphone kill switch through the sound server: mute or cut one app's recording, or all mics.

Works against PulseAudio and pipewire-pulse alike (libpulse through pulsectl). Muting is real
silence, measured: per-stream ``source_output_mute`` and per-source mute both turn a 440 Hz
sine into zeros (PulseAudio may first deliver ~1.5 s it had already buffered). This module
refuses nothing by process: checking that a pid still names the process the user meant is the
caller's job (the kill module's), as is persisting :meth:`MicControl.state_dict`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from camguard.core.text import literal
from camguard.platform.linux.pulse_conn import close_quietly as _close_quietly
from camguard.platform.linux.pulse_conn import connect, load_pulsectl
from camguard.platform.linux.pulse_props import parse_pid

# Through pulse_conn: a bare ``import pulsectl`` runs ldconfig, gcc and ld to find libpulse
# (pulse_conn.load_pulsectl), and this module may be the first to load it (the tray's kill
# switch, the service's block). The names below are then already in sys.modules.
load_pulsectl()
import pulsectl  # noqa: E402
from pulsectl import _pulsectl as _c  # noqa: E402

log = logging.getLogger(__name__)

# libpulse's PA_INVALID_INDEX: internal streams (e.g. a loopback's capture side) have no client,
# and a source that is not a monitor has no monitored sink.
INVALID_INDEX = 0xFFFFFFFF
LISTEN_SLICE = 1.0  # the watcher notices stop() at least this often
RETRY_MAX = 2.0     # cap of the watcher's reconnect back-off (a refused connect costs ~1 ms)
STATE_VERSION = 1
# What a dead, dying or restarted server raises. CallError is libpulse refusing a call on a
# failed context; it does not derive from PulseError.
_ERRORS: tuple[type[BaseException], ...] = (
    pulsectl.PulseError, pulsectl.PulseDisconnected, _c.pa.CallError, OSError)


@dataclass(frozen=True, slots=True)
class MicResult:
    """What an action did. ``message`` is for people (names in it went through literal());
    ``streams`` (source-output indices) and ``sources`` (raw source names: render them with
    :func:`~camguard.core.text.literal`) say what was touched."""

    ok: bool
    message: str
    streams: tuple[int, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MicStatus:
    """What camguard holds muted now. With ``ok`` False the server could not be asked: the
    tuples are empty and ``all_off`` says what camguard intends."""

    ok: bool
    message: str
    all_off: bool
    muted_sources: tuple[str, ...] = ()
    muted_streams: tuple[int, ...] = ()


def stream_pid(stream_props: Mapping[str, str], client_props: Mapping[str, str]) -> int | None:
    """The pid that owns a recording stream, or None if nothing says.

    Native PipeWire clients carry ``pipewire.sec.pid`` from SO_PEERCRED (the kernel, cannot be
    faked). For clients of pipewire-pulse that field is pipewire-pulse's own pid, so the
    self-reported ``application.process.id`` is all there is (as on PulseAudio).
    """
    if client_props.get("client.api") != "pipewire-pulse":
        sec = parse_pid(client_props.get("pipewire.sec.pid"))
        if sec is not None:
            return sec
    own = parse_pid(stream_props.get("application.process.id"))
    return own if own is not None else parse_pid(client_props.get("application.process.id"))


def is_microphone(source: Any) -> bool:
    """False for monitor sources: they replay what a sink plays, they are not microphones."""
    return bool(source.monitor_of_sink == INVALID_INDEX
                and source.proplist.get("device.class") != "monitor")


def _kill_source_output(pulse: Any, index: int) -> None:
    """libpulse ``pa_context_kill_source_output``, which pulsectl does not wrap, called the way
    pulsectl's own ``_pulse_method_call`` calls the others (pulsectl/pulsectl.py)."""
    op = None
    try:
        with pulse._pulse_op_cb() as cb:
            try:
                op = _c.pa.context_kill_source_output(pulse._ctx, index, cb, None)
            except _c.pa.CallError as err:
                raise pulsectl.PulseOperationInvalid(err.args[-1]) from err
    finally:
        if op:
            _c.pa.operation_unref(op)


def _try_item(pulse: Any, action: Callable[..., object], *args: object) -> bool:
    """Act on one stream or source: False if it vanished meanwhile. A failure on a dropped
    connection is re-raised, so the caller reconnects."""
    try:
        action(*args)
    except pulsectl.PulseOperationFailed:
        if not pulse.connected:
            raise
        return False
    return True


def _why(err: BaseException) -> str:
    if isinstance(err, pulsectl.PulseDisconnected | pulsectl.PulseOperationFailed):
        return "the connection was lost or the server refused the request"
    return literal(str(err) or type(err).__name__, limit=200)


class _AllOffWatcher:
    """Keeps microphones muted while all-off is active: sources that appear later and sources
    someone unmutes. Own thread and own connection (pulsectl cannot act while it listens);
    after a server restart it reconnects and enforces again."""

    def __init__(self, server: str | None, enforce: Callable[[Any], object]) -> None:
        self._server = server
        self._enforce = enforce
        self._stop = threading.Event()
        self._lock = threading.Lock()  # stop() must never wake a loop that was freed
        self._pulse: Any = None
        self._backoff = 0.1
        self._thread = threading.Thread(target=self._run, name="camguard-mic-all-off",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> bool:
        self._stop.set()
        with self._lock:
            if self._pulse is not None:
                self._pulse.event_listen_stop()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except _ERRORS as err:
                (log.info if self._backoff <= 0.1 else log.debug)(
                    "all-off watcher: sound server unavailable (%s); retrying", _why(err))
            finally:
                with self._lock:
                    pulse, self._pulse = self._pulse, None
                _close_quietly(pulse)
            self._stop.wait(self._backoff)
            self._backoff = min(self._backoff * 2, RETRY_MAX)

    def _session(self) -> None:
        pulse = connect(self._server, "camguard-mic-all-off")
        with self._lock:
            self._pulse = pulse
        dirty = [False]

        def on_event(ev: Any) -> None:
            if ev.t in ("new", "change"):
                dirty[0] = True
                raise pulsectl.PulseLoopStop  # act outside the callback: pulsectl forbids it

        pulse.event_mask_set("source")
        pulse.event_callback_set(on_event)
        self._backoff = 0.1
        self._enforce(pulse)  # after subscribing, so nothing can appear unseen in between
        while not self._stop.is_set():
            pulse.event_listen(timeout=LISTEN_SLICE)  # PulseDisconnected when the server goes
            if dirty[0]:
                dirty[0] = False
                self._enforce(pulse)


class MicControl:
    """Mute or cut recording streams by pid; switch every microphone off and back on.

    Threads: every public method may be called from any thread (one connection, one lock) and
    never raises for a dead or restarted server: it returns ``ok=False`` and a message. Each
    blocks for a few server round trips (milliseconds), up to ~2 s when the server does not
    answer (:data:`CONNECT_TIMEOUT`): call them from a worker, never from the GUI thread.
    Limit: once connected, pulsectl waits for each reply without a timeout, so a server that
    stops answering mid-call (SIGSTOP, deadlock) holds the caller until it answers or dies.
    While all-off is active, a thread of its own (``camguard-mic-all-off``) mutes sources that
    appear or get unmuted, reconnecting if the server restarts.

    What to restore (each source's mute state from before all-off, by name, which unlike an
    index survives a server restart) lives in memory: :meth:`state_dict` gives it as JSON-ready
    data for the caller to persist, :meth:`from_state` resumes it after camguard restarts.
    """

    def __init__(self, server: str | None = None) -> None:
        """``server``: a libpulse address; None means $PULSE_SERVER or the default. Does not
        connect yet, so it never fails."""
        self._server = server
        self._lock = threading.Lock()        # _pulse and _watcher
        self._state_lock = threading.Lock()  # _active/_previous/_muted_streams (both threads)
        self._pulse: Any = None
        self._watcher: _AllOffWatcher | None = None
        self._active = False
        self._previous: dict[str, bool] = {}
        self._muted_streams: dict[int, int] = {}  # stream index -> pid, muted by mute_app

    # -- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"version", "all_off", "previous_mute": {source name: was muted}}``, JSON-ready.
        Persist it whenever all_off()/all_on() returns, so a restart never forgets."""
        with self._state_lock:
            return {"version": STATE_VERSION, "all_off": self._active,
                    "previous_mute": dict(sorted(self._previous.items()))}

    @classmethod
    def from_state(cls, state: object, server: str | None = None) -> MicControl:
        """A MicControl resuming ``state`` (from :meth:`state_dict`); malformed entries are
        dropped with a warning. An active all-off is re-armed at once (fail closed:
        ``"all_off": true`` counts even if the rest is damaged): the watcher mutes sources as
        soon as it reaches the server. Does not block."""
        mc = cls(server)
        raw = state.get("previous_mute") if isinstance(state, Mapping) else None
        previous = ({k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, bool)}
                    if isinstance(raw, Mapping) else {})
        if state is not None and (not isinstance(raw, Mapping) or len(raw) != len(previous)):
            log.warning("microphone state partly unreadable; kept %d entries", len(previous))
        active = isinstance(state, Mapping) and state.get("all_off") is True
        with mc._state_lock:
            mc._active, mc._previous = active, previous
        if active:
            with mc._lock:
                mc._watcher = _AllOffWatcher(server, mc._enforce)
        return mc

    # -- one app ------------------------------------------------------------------------------
    def mute_app(self, pid: int) -> MicResult:
        """Mute every recording stream owned by ``pid`` (see :func:`stream_pid`); streams it
        opens later are not touched. WirePlumber remembers a stream mute per application name
        (under $XDG_STATE_HOME/wireplumber), so on PipeWire the app's next stream starts muted
        too, until :meth:`unmute_app`."""
        return self._app_streams(pid, "mute", lambda p, i: p.source_output_mute(i, True))

    def unmute_app(self, pid: int) -> MicResult:
        """Unmute every recording stream owned by ``pid``."""
        return self._app_streams(pid, "unmute", lambda p, i: p.source_output_mute(i, False))

    def cut_stream(self, pid: int) -> MicResult:
        """End every recording stream owned by ``pid`` (the app is told "Entity killed"). The
        app may simply reconnect: this is a cut, not a block."""
        return self._app_streams(pid, "cut", _kill_source_output)

    def _app_streams(self, pid: int, verb: str, action: Callable[[Any, int], object]
                     ) -> MicResult:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            return MicResult(False, f"cannot {verb}: {literal(repr(pid), 40)} is not a pid")

        def op(pulse: Any) -> MicResult:
            clients = {cl.index: cl.proplist for cl in pulse.client_list()}
            mine = [so.index for so in pulse.source_output_list()
                    if stream_pid(so.proplist, {} if so.client == INVALID_INDEX
                                  else clients.get(so.client, {})) == pid]
            if not mine:
                return MicResult(False, f"cannot {verb}: pid {pid} has no recording stream")
            done = tuple(i for i in mine if _try_item(pulse, action, pulse, i))
            with self._state_lock:
                for i in done:
                    if verb == "mute":
                        self._muted_streams[i] = pid
                    else:
                        self._muted_streams.pop(i, None)
            if not done:
                return MicResult(False, f"cannot {verb}: pid {pid}'s streams ended meanwhile")
            return MicResult(True, f"{verb}: {len(done)} recording stream(s) of pid {pid}",
                             streams=done)

        return self._run(verb, op)

    # -- every microphone ---------------------------------------------------------------------
    def all_off(self) -> MicResult:
        """Mute every microphone (never a monitor), recording each one's mute state first, and
        keep them muted, new ones too, until :meth:`all_on`. Idempotent. With the server down
        it still arms all-off (fail closed) and says so with ``ok=False``."""
        with self._lock:
            with self._state_lock:
                self._active = True
            result = self._run_locked("all off", self._all_off_op)
            if self._watcher is None:
                self._watcher = _AllOffWatcher(self._server, self._enforce)
        if not result.ok:
            return MicResult(False, result.message + "; all-off stays armed and will mute "
                             "microphones as soon as the server is back")
        return result

    def _all_off_op(self, pulse: Any) -> MicResult:
        newly = self._enforce(pulse)
        with self._state_lock:
            held = sum(1 for was in self._previous.values() if not was)
        if newly:
            what = "muted " + ", ".join(literal(n, 80) for n in newly)
        else:
            what = "every microphone was muted already"
        kept = f"; {held} kept muted by camguard until you turn them back on" if held else ""
        return MicResult(True, f"all microphones off ({what}{kept})", sources=tuple(newly))

    def all_on(self) -> MicResult:
        """End all-off: stop the watcher (up to ~1 s more), then give each remembered source
        that still exists its exact earlier state (muted before all-off: stays muted). If the
        server cannot be reached, all-off stays active, nothing is forgotten and ``ok`` is
        False: call again later."""
        with self._lock:
            with self._state_lock:
                was_active, self._active = self._active, False
            watcher, self._watcher = self._watcher, None
            if watcher is not None and not watcher.stop():
                log.warning("all-off watcher did not stop in time (server not answering)")
            result = self._run_locked("all on", self._all_on_op)
            if not result.ok and was_active:
                with self._state_lock:
                    self._active = True
                self._watcher = _AllOffWatcher(self._server, self._enforce)
        return result

    def _all_on_op(self, pulse: Any) -> MicResult:
        with self._state_lock:
            previous = dict(self._previous)
        unmuted: list[str] = []
        for src in pulse.source_list():
            want = previous.get(src.name)
            if want is None or not is_microphone(src) or bool(src.mute) == want:
                continue
            if _try_item(pulse, pulse.source_mute, src.index, want) and not want:
                unmuted.append(src.name)
        with self._state_lock:
            self._previous.clear()
        kept = sum(1 for was in previous.values() if was)
        if unmuted:
            what = "unmuted " + ", ".join(literal(n, 80) for n in unmuted)
        else:
            what = "none was muted by camguard"
        stay = f"; {kept} muted before all-off stay muted" if kept else ""
        return MicResult(True, f"microphones back on ({what}{stay})", sources=tuple(unmuted))

    def _enforce(self, pulse: Any) -> list[str]:
        """While all-off is active, mute every microphone; returns the names muted now. Runs on
        a caller's thread or the watcher's. A source's state is recorded BEFORE camguard mutes
        it, so whichever thread records first saw the state from before all-off."""
        muted: list[str] = []
        for src in pulse.source_list():
            if not is_microphone(src):
                continue
            with self._state_lock:
                if not self._active:
                    break
                self._previous.setdefault(src.name, bool(src.mute))
            if not src.mute and _try_item(pulse, pulse.source_mute, src.index, True):
                muted.append(src.name)
        if muted:
            log.info("all-off: muted %s", ", ".join(literal(n, 80) for n in muted))
        return muted

    def status(self) -> MicStatus:
        """Which sources and streams camguard holds muted now, and whether all-off is active."""
        def op(pulse: Any) -> MicResult:
            sources = [s.name for s in pulse.source_list() if is_microphone(s) and s.mute]
            streams = {so.index: bool(so.mute) for so in pulse.source_output_list()}
            with self._state_lock:
                for gone in [i for i in self._muted_streams if i not in streams]:
                    del self._muted_streams[gone]  # ended: the server reuses indices
                ours = tuple(sorted(n for n in sources if self._previous.get(n) is False))
                held = tuple(sorted(i for i in self._muted_streams if streams[i]))
            return MicResult(True, "", streams=held, sources=ours)

        result = self._run("status", op)
        with self._state_lock:
            active = self._active
        message = result.message or (
            f"all microphones off: {'yes' if active else 'no'}; camguard keeps "
            f"{len(result.sources)} microphone(s) and {len(result.streams)} recording(s) "
            "muted")
        return MicStatus(result.ok, message, active, result.sources, result.streams)

    def close(self) -> None:
        """Stop the watcher and disconnect. Mutes stay as they are on the server (a closing
        camguard does not give microphones back): persist :meth:`state_dict` first."""
        with self._lock:
            watcher, self._watcher = self._watcher, None
            if watcher is not None:
                watcher.stop()
            pulse, self._pulse = self._pulse, None
            _close_quietly(pulse)

    # -- the connection -----------------------------------------------------------------------
    def _run(self, what: str, op: Callable[[Any], MicResult]) -> MicResult:
        with self._lock:
            return self._run_locked(what, op)

    def _run_locked(self, what: str, op: Callable[[Any], MicResult]) -> MicResult:
        """Run ``op`` on the connection (caller holds the lock). A connection that fails is
        dropped and ``op`` retried once on a new one, unless connecting was what failed: a
        dead server fails fast and there is no point waiting for it twice."""
        error: BaseException | None = None
        for _ in range(2):
            reused = self._pulse is not None and bool(self._pulse.connected)
            try:
                if not reused:
                    _close_quietly(self._pulse)
                    self._pulse = None
                    self._pulse = connect(self._server, "camguard")
                return op(self._pulse)
            except _ERRORS as err:
                error = err
                _close_quietly(self._pulse)
                self._pulse = None
                if not reused:
                    break
        where = literal(self._server or os.environ.get("PULSE_SERVER") or "(default)", 200)
        reason = _why(error) if error is not None else "unknown error"
        log.info("%s failed: sound server %s: %s", what, where, reason)
        return MicResult(False, f"{what}: cannot reach the sound server {where} ({reason})")
