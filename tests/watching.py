"""Test helpers: a started Monitor that records events, and waits with deadlines."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from camguard.core.models import EventType, HealthEvent, MonitorEvent, UsageEvent
from camguard.monitor import Monitor
from camguard.platform.base import UsageSource
from camguard.platform.clock import SystemClock


class Recorder:
    """Collects monitor events; ``wait_for`` blocks until one matches or a deadline passes."""

    def __init__(self) -> None:
        self.events: list[MonitorEvent] = []
        self._cond = threading.Condition()

    def __call__(self, ev: MonitorEvent) -> None:
        with self._cond:
            self.events.append(ev)
            self._cond.notify_all()

    def wait_for(self, match: Callable[[MonitorEvent], bool], timeout: float = 10.0,
                 start: int = 0) -> MonitorEvent:
        with self._cond:
            found: list[MonitorEvent] = []

            def check() -> bool:
                found[:] = [e for e in self.events[start:] if match(e)]
                return bool(found)

            if not self._cond.wait_for(check, timeout):
                raise AssertionError(f"no matching event within {timeout} s; got {self.events}")
            return found[0]

    def usage_events(self) -> list[UsageEvent]:
        with self._cond:
            return [e for e in self.events if isinstance(e, UsageEvent)]

    def health_events(self) -> list[HealthEvent]:
        with self._cond:
            return [e for e in self.events if isinstance(e, HealthEvent)]


def started(pid: int | None, device: str | None = None) -> Callable[[MonitorEvent], bool]:
    return _usage(EventType.STARTED, pid, device)


def stopped(pid: int | None, device: str | None = None) -> Callable[[MonitorEvent], bool]:
    return _usage(EventType.STOPPED, pid, device)


def _usage(kind: EventType, pid: int | None, device: str | None
           ) -> Callable[[MonitorEvent], bool]:
    def match(ev: MonitorEvent) -> bool:
        if not isinstance(ev, UsageEvent) or ev.type is not kind:
            return False
        got = ev.usage.process.pid if ev.usage.process else None
        return got == pid and (device is None or ev.usage.device.id == device)

    return match


@contextmanager
def watching(sources: Sequence[UsageSource], rescan_interval: float = 30.0
             ) -> Iterator[tuple[Monitor, Recorder]]:
    monitor = Monitor(sources, SystemClock(), settle=0.002, rescan_interval=rescan_interval)
    rec = Recorder()
    monitor.add_sink(rec)
    monitor.start()
    try:
        yield monitor, rec
    finally:
        monitor.stop()
