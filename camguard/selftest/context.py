"""What one selftest run shares: options, the monitor and its sightings, cancellation."""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from camguard.core.models import MonitorEvent, UsageEvent
from camguard.core.settings import DetectionSettings
from camguard.core.text import literal
from camguard.monitor import Monitor
from camguard.platform import current
from camguard.platform.process import ProcessDescriber
from camguard.selftest.report import SelftestReport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SelftestOptions:
    record_seconds: float = 1.0  # length of each level measurement
    detect_timeout: float = 5.0  # how long a held device may go unreported before it fails
    # How long to wait for OpenCV's open of a node it closes again at once (usually missed).
    brief_open_timeout: float = 1.0
    level_timeout: float = 10.0  # for the level to settle (PulseAudio replays ~1.5 s buffered)
    # The block is timed, so that even a selftest killed with SIGKILL leaves nothing off for
    # longer than this (any later camguard command lifts an expired block).
    block_seconds: float = 600.0


class Cancelled(Exception):
    """The caller asked the selftest to stop (the CLI on SIGINT/SIGTERM, a Cancel button)."""


class Sightings:
    """Usage-started events from the monitor (called on its thread), waited for by pid."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: list[UsageEvent] = []

    def sink(self, ev: MonitorEvent) -> None:
        if isinstance(ev, UsageEvent) and ev.type.value == "started":
            with self._cond:
                self._events.append(ev)
                self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self._events)

    def wait(self, device_id: str, pid: int, since: int, timeout: float,
             cancel: threading.Event | None = None) -> UsageEvent | None:
        """The first started event after ``since`` naming ``pid`` on ``device_id``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._events[since:]:
                    p = ev.usage.process
                    if ev.usage.device.id == device_id and p is not None and p.pid == pid:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or (cancel is not None and cancel.is_set()):
                    return None
                self._cond.wait(min(left, 0.1))


@dataclass
class Context:
    """What every phase of one selftest run shares."""

    settings: DetectionSettings
    report: SelftestReport
    options: SelftestOptions
    cancel: threading.Event
    progress: Callable[[str], None]
    sightings: Sightings
    monitor: Monitor | None = None
    monitor_problem: str = ""

    def step(self, what: str) -> None:
        """A step boundary: report progress, or stop here if asked to."""
        if self.cancel.is_set():
            raise Cancelled
        self.progress(what)

    def seen_within(self, device_id: str, since: int, timeout: float) -> UsageEvent | None:
        if self.monitor is None:
            return None
        return self.sightings.wait(device_id, os.getpid(), since, timeout, self.cancel)

    def released(self, device_id: str, timeout: float) -> bool:
        """Wait until camguard no longer counts this process as a user of ``device_id``.

        A brief open just before (OpenCV's probe, which fanotify reports as a use of a few
        milliseconds) must have ended first, or a new open would merge into it and bring
        no new "started" event to detect.
        """
        if self.monitor is None:
            return True
        me = os.getpid()
        deadline = time.monotonic() + timeout
        while any(u.device.id == device_id and u.process is not None and u.process.pid == me
                  for u in self.monitor.state.usages):
            if time.monotonic() > deadline or self.cancel.wait(0.01):
                return False
        return True

    def why_unseen(self) -> str:
        """What the monitor itself says is wrong, for a detection that did not happen."""
        if self.monitor is None:
            return f"; the monitor did not run ({self.monitor_problem})"
        degraded = self.monitor.state.degraded
        if not degraded:
            return ""
        return "; degraded: " + "; ".join(
            f"{d.source}: {literal(d.reason, 200)}" for d in degraded)


def nodes(globs: tuple[str, ...]) -> list[str]:
    """Existing paths the globs match, in order, once each (as the detection sources do)."""
    out: list[str] = []
    for pattern in globs:
        for path in sorted(glob.glob(pattern)):
            if path not in out and not os.path.isdir(path):
                out.append(path)
    return out


def other_holders(paths: list[str], sound_servers: tuple[str, ...]) -> list[str]:
    """Other processes that hold any of ``paths`` open now (a block would end them; sound
    servers are left running by a block, so they do not count)."""
    if not paths:
        return []
    found = current().probes().open_holders(paths)
    describer = ProcessDescriber()
    out: list[str] = []
    for path, pids in found.items():
        for pid in pids:
            if pid == os.getpid():
                continue
            ref = describer.describe(pid)
            if ref is not None and ref.exe in sound_servers:
                continue
            name = literal(ref.name, 60) if ref is not None else "?"
            out.append(f"{name} (pid {pid}) holds {literal(path, 200)}")
    return out
