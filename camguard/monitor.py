"""The Monitor: wake-ups from sources, a fresh look at the dirty ones, and the diff as events.

Qt-free, so it serves the headless CLI and (inside a worker thread) the tray alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from camguard.core.clock import Clock
from camguard.core.diff import diff
from camguard.core.models import (
    Degraded,
    EventType,
    HealthEvent,
    MonitorEvent,
    SourceSnapshot,
    Usage,
)
from camguard.core.probes import ProbeFilter, ProbeSettings
from camguard.core.state import GuardState, UsageKey, merge
from camguard.platform.base import UsageSource

log = logging.getLogger(__name__)

Sink = Callable[[MonitorEvent], None]


class Monitor:
    """Runs on its own plain thread; sinks are called on that thread, in event order.

    A sink must not block for long (hand work to another thread); an exception in a sink
    is logged and does not stop the monitor or the other sinks.
    """

    def __init__(
        self,
        sources: Sequence[UsageSource],
        clock: Clock,
        *,
        settle: float = 0.002,
        rescan_interval: float = 30.0,
        probes: ProbeSettings | None = None,
    ) -> None:
        self._sources = {s.name: s for s in sources}
        self._clock = clock
        self._settle = settle
        self._rescan_interval = rescan_interval
        self._sinks: list[Sink] = []
        self._cond = threading.Condition()
        self._dirty: set[str] = set()
        self._recheck_at: dict[str, float] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._snaps: dict[str, SourceSnapshot] = {}
        self._usages: dict[UsageKey, Usage] = {}
        self._first_seen: dict[UsageKey, float] = {}
        self._state = GuardState()
        self._ready = threading.Event()
        # Probes are not alarms (core/probes.py): which sessions were probes, which apps storm.
        self._probes = ProbeFilter(probes or ProbeSettings())

    # -- wiring ------------------------------------------------------------------------
    def add_sink(self, sink: Sink) -> None:
        """Register before :meth:`start`; sinks are not thread-safe to add later."""
        self._sinks.append(sink)

    def start(self) -> None:
        """Start the sources and the monitor thread; returns once the first look is done."""
        if self._thread is not None:
            raise RuntimeError("monitor already started")
        self._thread = threading.Thread(target=self._run, name="camguard-monitor", daemon=True)
        self._thread.start()
        self._ready.wait()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        for source in self._sources.values():
            try:
                source.stop()
            except Exception:
                log.exception("stopping source %s failed", source.name)

    def wake(self, source: str | None = None) -> None:
        """Ask for a fresh look at ``source`` (all sources when None). Thread-safe, cheap."""
        with self._cond:
            self._dirty.update([source] if source else self._sources)
            self._cond.notify_all()

    def snapshots(self) -> dict[str, SourceSnapshot]:
        """Each source's latest snapshot (a copy; safe from any thread)."""
        return self._snaps.copy()

    @property
    def state(self) -> GuardState:
        """The latest merged state (an immutable object; safe from any thread)."""
        return self._state

    # -- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            for name, source in self._sources.items():
                try:
                    source.start(lambda n=name: self.wake(n))  # type: ignore[misc]
                except Exception as exc:
                    log.exception("source %s failed to start", name)
                    self._snaps[name] = SourceSnapshot(name, degraded=Degraded(name, str(exc)))
            self._look(set(self._sources))
        finally:
            self._ready.set()
        next_rescan = self._clock.monotonic() + self._rescan_interval
        while True:
            with self._cond:
                while not self._stopping and not self._dirty:
                    now = self._clock.monotonic()
                    due = min([next_rescan, *self._recheck_at.values()])
                    if now >= due:
                        break
                    self._cond.wait(due - now)
                if self._stopping:
                    return
            # Let a burst (open, ioctl, mmap; several streams at once) settle, then look once.
            if self._settle > 0:
                time.sleep(self._settle)
            now = self._clock.monotonic()
            with self._cond:
                dirty = set(self._dirty)
                self._dirty.clear()
            dirty |= {n for n, t in self._recheck_at.items() if t <= now}
            if now >= next_rescan:
                dirty |= set(self._sources)
                next_rescan = now + self._rescan_interval
            for n in dirty:
                self._recheck_at.pop(n, None)
            self._look(dirty)

    def _look(self, names: set[str]) -> None:
        for name in sorted(names):
            source = self._sources.get(name)
            if source is None:
                continue
            try:
                snap = source.snapshot()
            except Exception as exc:  # a source must not raise, but the guard must not die
                log.exception("source %s failed", name)
                snap = SourceSnapshot(name, degraded=Degraded(name, f"internal error: {exc}"))
            old = self._snaps.get(name)
            self._snaps[name] = snap
            if snap.recheck_in is not None:
                self._recheck_at[name] = self._clock.monotonic() + snap.recheck_in
            self._health(name, old.degraded if old else None, snap.degraded)
        at = self._clock.now()
        merged = merge(self._snaps.values())
        probes = [p for snap in self._snaps.values() for p in snap.probes]
        events = self._probes.idle_links(merged.usages, probes, set(self._usages), at)
        for ev in diff(self._usages, merged.usages, at, self._first_seen):
            if ev.type is EventType.STARTED:
                self._first_seen[ev.usage.key] = at
                events.append(self._probes.started(ev))
            else:
                self._first_seen.pop(ev.usage.key, None)
                events += self._probes.stopped(ev)
        self._usages = {u.key: u for u in merged.usages}
        self._state = GuardState(merged.devices, merged.usages, merged.degraded,
                                 dict(self._first_seen))
        for ev in events:
            self._emit(ev)

    def _health(self, name: str, old: Degraded | None, new: Degraded | None) -> None:
        if old == new or (old is not None and new is not None):
            return  # unchanged, or still degraded (a new reason is not news)
        self._emit(HealthEvent(name, new, self._clock.now()))

    def _emit(self, ev: MonitorEvent) -> None:
        for sink in self._sinks:
            try:
                sink(ev)
            except Exception:
                log.exception("event sink failed for %s", ev)
