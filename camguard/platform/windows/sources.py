"""The Windows usage sources (platform.base.UsageSource): cameras from the sensor activity
monitor's reports, microphones from Core Audio capture sessions, each fed by an adapter
(com.py) given to the constructor, with every decision in activity.py and consent.py.

Windows' ConsentStore is history, not live state: it is used only when the sensor monitor
is unavailable, and then only for an app the store says is in use AND that has a running
process with that exe (consent.live_candidates), shown with a note saying where it came
from. An entry left "in use" by a crash is never shown as live use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from camguard.core.coverage import Coverage
from camguard.core.models import UNSEEN_PROCESS_NOTE as UNSEEN
from camguard.core.models import Degraded, Device, DeviceKind, SourceSnapshot, Usage
from camguard.core.text import literal
from camguard.platform.base import Wake
from camguard.platform.process import ProcessDescriber
from camguard.platform.windows.activity import CameraActivity, DeviceUse, microphone_users
from camguard.platform.windows.consent import ConsentEntry, live_candidates

ONE_SHOT_WAIT = 1.0  # the monitor reports every open device right after Start()
MIC_POLL = 1.0
FALLBACK_NOTE = ("named by Windows' ConsentStore (the sensor monitor is unavailable): the "
                 "store lags live use and keeps only each app's last session")
KIND_OF = {"camera": DeviceKind.CAMERA, "microphone": DeviceKind.MICROPHONE}


class SensorFeed(Protocol):
    """IMFSensorActivityMonitor (com.SensorActivityFeed): calls ``on_event`` from a COM
    thread with activity.CameraActivity events."""

    def start(self, on_event: Callable[[Mapping[str, Any]], None]) -> None: ...

    def stop(self) -> None: ...


def consent_usages(entries: Iterable[ConsentEntry], processes: Iterable[tuple[int, str]]
                   ) -> list[tuple[DeviceKind, int, str]]:
    """(kind, pid, exe) for each running process whose exe the store says is in use."""
    procs = list(processes)
    found = live_candidates(entries, (exe for _pid, exe in procs))
    out: list[tuple[DeviceKind, int, str]] = []
    for entry in found:
        kind = KIND_OF.get(entry.kind)
        if kind is None:
            continue
        out.extend((kind, pid, exe) for pid, exe in procs if exe.casefold() == entry.app.casefold())
    return sorted(set(out))


class ConsentWatch(Protocol):
    """consent_reader.ConsentWatcher: ``run`` blocks, calling ``wake`` on each change of
    the ConsentStore, until ``stop`` (from another thread)."""

    def run(self, wake: Wake) -> None: ...

    def stop(self) -> None: ...


class CameraSource:
    name = "mf-sensor"

    def __init__(self, feed: SensorFeed | None, describer: ProcessDescriber, *,
                 unavailable: str = "",
                 consent: Callable[[], list[ConsentEntry]] | None = None,
                 processes: Callable[[], list[tuple[int, str]]] | None = None,
                 watch: ConsentWatch | None = None,
                 fallback_kinds: frozenset[DeviceKind] = frozenset(DeviceKind)) -> None:
        self.feed = feed
        # What the ConsentStore fallback reports (the service's microphone has its own
        # source, coverage.ServiceMicSource).
        self.fallback_kinds = fallback_kinds
        self.watch = watch  # wakes the fallback when the ConsentStore changes
        self._watcher: threading.Thread | None = None
        self.describer = describer
        self.unavailable = unavailable
        self.consent, self.processes = consent, processes
        self._state = CameraActivity()
        self._lock = threading.Lock()
        self._reported = threading.Event()
        self._wake: Wake | None = None
        self._started = False
        self._failed = ""

    def _on_event(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            changed = self._state.apply(event)
            wake = self._wake
        self._reported.set()
        if changed and wake is not None:
            wake()

    def start(self, wake: Wake) -> None:
        self._wake = wake
        if self.feed is not None:
            try:
                self.feed.start(self._on_event)
            except OSError as exc:  # snapshots say so (degraded) until a restart
                self._failed = f"the camera sensor monitor did not start: {literal(str(exc), 200)}"
                return
            self._started, self._failed = True, ""
        elif self.watch is not None and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, args=(self.watch, wake),
                                             name="consentstore-watch", daemon=True)
            self._watcher.start()

    @staticmethod
    def _watch(watch: ConsentWatch, wake: Wake) -> None:
        try:
            watch.run(wake)
        except OSError:  # the key vanished or cannot be watched: the 2 s re-read remains
            logging.getLogger(__name__).warning("ConsentStore watch ended", exc_info=True)

    def stop(self) -> None:
        if self.feed is not None and self._started:
            self.feed.stop()
        if self._watcher is not None and self.watch is not None:
            self.watch.stop()
            self._watcher.join(1.0)
            self._watcher = None
        self._started, self._wake = False, None

    def snapshot(self) -> SourceSnapshot:
        if self.feed is None:
            return self._fallback()
        if self._failed:
            return SourceSnapshot(self.name, degraded=Degraded(self.name, self._failed))
        if not self._started:  # one-shot (camguard status): let the monitor report once
            try:
                self.feed.start(self._on_event)
                try:
                    self._reported.wait(ONE_SHOT_WAIT)
                finally:
                    self.feed.stop()
            except OSError as exc:
                return SourceSnapshot(self.name, degraded=Degraded(
                    self.name, f"the camera sensor monitor: {literal(str(exc), 200)}"))
        with self._lock:
            users = self._state.users()
        return self._build(users)

    def coverage(self, last: SourceSnapshot | None) -> list[Coverage]:
        from camguard.platform.windows.coverage import camera_coverage

        return camera_coverage(self.name, feed=self.feed is not None, failed=self._failed,
                               unavailable=self.unavailable, last=last,
                               consent=self.consent is not None and self.processes is not None)

    def _build(self, users: list[DeviceUse]) -> SourceSnapshot:
        devices, usages = set(), set()
        for use in users:
            dev = Device(DeviceKind.CAMERA, f"mf:{use.device}", use.name or use.device,
                         source=self.name)
            devices.add(dev)
            for pid in sorted(use.pids):
                ref = self.describer.describe(pid)
                usages.add(Usage(dev, ref, note="" if ref else f"{UNSEEN} (pid {pid})"))
        return SourceSnapshot(self.name, frozenset(devices), frozenset(usages))

    def _fallback(self) -> SourceSnapshot:
        degraded = Degraded(self.name, self.unavailable or "the sensor monitor is unavailable")
        if self.consent is None or self.processes is None:
            return SourceSnapshot(self.name, degraded=degraded)
        try:
            found = consent_usages(self.consent(), self.processes())
        except (OSError, ValueError) as exc:
            return SourceSnapshot(self.name, degraded=Degraded(
                self.name, f"{degraded.reason}; the ConsentStore: {literal(str(exc), 200)}"))
        devices, usages = set(), set()
        for kind, pid, _exe in found:
            if kind not in self.fallback_kinds:
                continue
            dev = Device(kind, f"consentstore:{kind}", f"{kind} (ConsentStore)", source=self.name)
            devices.add(dev)
            ref = self.describer.describe(pid)
            if ref is not None:
                usages.add(Usage(dev, ref, note=FALLBACK_NOTE))
        return SourceSnapshot(self.name, frozenset(devices), frozenset(usages),
                              degraded=degraded, recheck_in=2.0)


class MicSource:
    """Polled (MIC_POLL) Core Audio capture sessions; ``poll`` is com.capture_endpoints."""

    name = "wasapi"

    def __init__(self, poll: Callable[[], list[Mapping[str, Any]]] | None,
                 describer: ProcessDescriber, *, unavailable: str = "") -> None:
        self.poll = poll
        self.describer = describer
        self.unavailable = unavailable

    def start(self, wake: Wake) -> None:
        """Nothing to start: each snapshot asks to be looked at again in MIC_POLL s."""

    def stop(self) -> None:
        """Nothing runs between snapshots."""

    def coverage(self, last: SourceSnapshot | None) -> list[Coverage]:
        from camguard.platform.windows.coverage import mic_coverage

        return mic_coverage(self.name, available=self.poll is not None,
                            unavailable=self.unavailable, last=last)

    def snapshot(self) -> SourceSnapshot:
        if self.poll is None:
            return SourceSnapshot(self.name, degraded=Degraded(self.name, self.unavailable))
        try:
            users = microphone_users(self.poll())
        except OSError as exc:
            return SourceSnapshot(self.name, degraded=Degraded(
                self.name, f"Core Audio: {literal(str(exc), 200)}"), recheck_in=MIC_POLL)
        devices, usages = set(), set()
        for use in users:
            dev = Device(DeviceKind.MICROPHONE, f"wasapi:{use.device}", use.name or use.device,
                         source=self.name)
            devices.add(dev)
            for pid in sorted(use.pids):
                ref = self.describer.describe(pid)
                usages.add(Usage(dev, ref, note="" if ref else f"{UNSEEN} (pid {pid})"))
        return SourceSnapshot(self.name, frozenset(devices), frozenset(usages),
                              recheck_in=MIC_POLL)
