"""The macOS usage source: CoreMediaIO and CoreAudio readings, the unified log's owner
evidence and CoreAudio's process objects, combined by state.MacUsageState.

Wake-ups come from HAL property listeners (each device's IsRunningSomewhere, the device
lists, the process-object list), from the log reader, and from a slow safety poll on the
watcher thread, which also turns an NSRunLoop so that framework callbacks that need a run
loop (CoreMediaIO's, AVFoundation's hot-plug notifications) get one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from camguard.core.models import Degraded, SourceSnapshot
from camguard.platform.base import Wake
from camguard.platform.macos import hal
from camguard.platform.macos.logparse import OwnerEvidence, Version, plan_for
from camguard.platform.macos.logstream import LogStreamReader
from camguard.platform.macos.state import SOURCE, Describe, MacUsageState

log = logging.getLogger(__name__)

POLL = 2.0  # seconds: listeners are the signal, this only catches a missed one
SLICE = 0.5  # seconds the run loop turns before the thread checks for stop()


class MacSource:
    """UsageSource for macOS. ``audio``/``cmio``: property access (pyobjc on a Mac, fakes in
    tests); ``log_argv``: replaces ``log stream``'s command line (tests)."""

    name = SOURCE

    def __init__(self, version: Version | None, audio: hal.PropertyAccess,
                 cmio: hal.PropertyAccess, describe: Describe, *,
                 clock: Callable[[], float] = time.monotonic,
                 log_argv: list[str] | None = None, poll: float = POLL) -> None:
        self._plan = plan_for(version) if version is not None else None
        self._state = MacUsageState(version, log_known=self._plan is not None)
        self._audio = audio
        self._cmio = cmio
        self._describe = describe
        self._clock = clock
        self._log_argv = log_argv
        self._poll = poll
        self._lock = threading.Lock()
        self._reader: LogStreamReader | None = None
        self._tokens: list[tuple[hal.PropertyAccess, object]] = []
        self._listening: set[tuple[bool, int, int]] = set()
        self._listen_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake: Wake | None = None

    # -- UsageSource -------------------------------------------------------------------------
    def snapshot(self) -> SourceSnapshot:
        try:
            readings = hal.read_cameras(self._cmio) + hal.read_microphones(self._audio)
            processes = hal.read_processes(self._audio)
        except (OSError, ValueError) as exc:
            return SourceSnapshot(SOURCE, degraded=Degraded(SOURCE, f"CoreAudio/CoreMediaIO "
                                                            f"cannot be read: {exc}"))
        with self._lock:
            now = self._clock()
            self._state.devices(readings, now)
            self._state.processes(processes)
            result = self._state.result(now, self._describe, self._log_unread())
        self._listen_new()
        return SourceSnapshot(SOURCE, devices=result.devices, usages=result.usages,
                              degraded=self._degraded(), recheck_in=result.recheck_in)

    def start(self, wake: Wake) -> None:
        self._wake = wake
        self._stop.clear()
        if self._plan is not None:
            self._reader = LogStreamReader(self._plan, self._on_evidence, self._log_argv)
            self._reader.start()
        self._listen_new()
        self._thread = threading.Thread(target=self._run, name="camguard-macos", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._listen_lock:
            for access, token in self._tokens:
                try:
                    access.unlisten(token)
                except hal.HalError as exc:
                    log.info("removing a listener: %s", exc)
            self._tokens.clear()
            self._listening.clear()
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self._thread is not None:
            self._thread.join(SLICE + 1.0)
        self._wake = None

    # -- inside ------------------------------------------------------------------------------
    def _listen_new(self) -> None:
        """Listen to every watched property not listened to yet: at start, and after each
        look, so a camera plugged in later wakes the monitor when it starts running."""
        wake = self._wake
        if wake is None or self._stop.is_set():
            return
        with self._listen_lock:
            for access, obj, selector in hal.watched(self._audio, self._cmio):
                key = (access is self._cmio, obj, selector)
                if key in self._listening:
                    continue
                try:
                    self._tokens.append((access, access.listen(obj, selector, wake)))
                    self._listening.add(key)
                except hal.HalError as exc:
                    log.info("no listener for %#x on %d: %s", selector, obj, exc)

    def _on_evidence(self, found: list[OwnerEvidence]) -> None:
        with self._lock:
            self._state.log(found, self._clock())
        wake = self._wake
        if wake is not None:
            wake()

    def _log_unread(self) -> str | None:
        """Why the log cannot name owners now, or None while it is being read."""
        if self._plan is None:
            return None  # the state machine says "format not recognised" itself
        if self._reader is None:
            return ("unknown (camguard reads the unified log only while it watches: the tray "
                    "or camguard watch)")
        if self._reader.error:
            return "unknown (the unified log cannot be read)"
        return None

    def _degraded(self) -> Degraded | None:
        if self._plan is None:
            return Degraded(SOURCE, "camguard knows no unified-log format for this macOS "
                                    "version: in-use devices are shown with owner unknown")
        if self._reader is not None and self._reader.error:
            return Degraded(SOURCE, f"the unified log is not read ({self._reader.error}): "
                                    "camera owners are unknown")
        return None

    def _run(self) -> None:
        spin = _run_loop_spinner()
        due = time.monotonic() + self._poll
        while not self._stop.is_set():
            # Short slices: stop() must end this thread within about a second.
            step = min(SLICE, max(0.0, due - time.monotonic()))
            if spin is not None:
                spin(step)
            else:
                self._stop.wait(step)
            if time.monotonic() < due or self._stop.is_set():
                continue
            due = time.monotonic() + self._poll
            wake = self._wake
            if wake is not None:
                wake()


def _run_loop_spinner() -> Callable[[float], None] | None:
    """Turns this thread's NSRunLoop for up to N seconds; None without Foundation (Linux,
    tests), where the thread just waits."""
    try:
        import Foundation  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    foundation: Any = Foundation
    loop = foundation.NSRunLoop.currentRunLoop()
    mode = foundation.NSDefaultRunLoopMode

    def spin(seconds: float) -> None:
        until = foundation.NSDate.dateWithTimeIntervalSinceNow_(seconds)
        if not loop.runMode_beforeDate_(mode, until):
            time.sleep(seconds)  # no input source attached yet: nothing to turn, just wait
    return spin
