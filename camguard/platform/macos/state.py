"""The macOS usage state machine (pure): combines "device is running somewhere" readings
(CoreMediaIO for cameras, CoreAudio for microphones), owner evidence from the unified log
and CoreAudio's process-object list (macOS 14.2+) into camguard's usages.

Time is passed in (``now``, seconds on any monotonic clock), so recorded traces replay
exactly. Rules, and why:

* A device that is not running has no usage, whatever the log said.
* Microphones: when the process-object list is available it is the truth (public API that
  names each process with ``kAudioProcessPropertyIsRunningInput``); the log is used only on
  older systems.
* Cameras (and old-system microphones): a log owner counts for a device only if it was seen
  at most ``EVIDENCE_WINDOW`` seconds before the device turned on, or after. The log line
  usually arrives after the property change (OverSight waits 0.5 s for it), so a running
  device with no owner yet asks to be looked at again and says "unknown (macOS N log format
  not recognised)" only once ``WAIT`` has passed: never a wrong app, never a guess.
* When every device of a kind stops, that kind's log owners are forgotten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.core.text import literal
from camguard.platform.macos.logparse import (
    Confidence,
    OwnerEvidence,
    Pattern,
    Version,
    unknown_note,
)

SOURCE = "macos"
WAIT = 1.0
EVIDENCE_WINDOW = 5.0
MAX_OWNERS = 64  # per kind: a flood of log lines cannot grow the state without bound
ANY_MICROPHONE = Device(DeviceKind.MICROPHONE, "coreaudio:input", "a microphone", source=SOURCE)
Describe = Callable[[int], ProcessRef | None]


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """One device as its property said at one look."""

    kind: DeviceKind
    uid: str
    name: str
    running: bool

    def device(self) -> Device:
        prefix = "cmio" if self.kind is DeviceKind.CAMERA else "coreaudio"
        return Device(self.kind, f"{prefix}:{self.uid}", self.name, source=SOURCE)


@dataclass(frozen=True, slots=True)
class AudioProcess:
    """One CoreAudio process object (kAudioHardwarePropertyProcessObjectList entry)."""

    pid: int
    bundle_id: str
    running_input: bool


@dataclass(frozen=True, slots=True)
class Result:
    """What one look gives: every known device, the usages, and when to look again."""

    devices: frozenset[Device]
    usages: frozenset[Usage]
    recheck_in: float | None


class MacUsageState:
    """Feed it readings in time order; ask :meth:`result` whenever. Not thread-safe: the
    source calls it under its own lock."""

    def __init__(self, version: Version | None, *, log_known: bool = True) -> None:
        self.version = version
        self._log_known = log_known  # False: no pattern exists for this version
        self._readings: dict[str, DeviceReading] = {}
        self._on_since: dict[str, float] = {}
        self._owners: dict[DeviceKind, dict[int, tuple[OwnerEvidence, float]]] = {
            DeviceKind.CAMERA: {}, DeviceKind.MICROPHONE: {}}
        self._processes: tuple[AudioProcess, ...] | None = None

    # -- inputs ----------------------------------------------------------------------------
    def devices(self, readings: Iterable[DeviceReading], now: float) -> None:
        """The full list of devices at ``now`` (a device missing from it was unplugged)."""
        was_running = {k: self._running(k) for k in DeviceKind}
        self._readings = {r.device().id: r for r in readings}
        for dev_id, reading in self._readings.items():
            if reading.running:
                self._on_since.setdefault(dev_id, now)
            else:
                self._on_since.pop(dev_id, None)
        for dev_id in set(self._on_since) - set(self._readings):
            del self._on_since[dev_id]
        for kind in DeviceKind:
            if was_running[kind] and not self._running(kind):
                self._owners[kind].clear()

    def log(self, evidence: Sequence[OwnerEvidence], now: float) -> None:
        """The evidence of one log line (logparse.parse_line), seen at ``now``."""
        status = [e for e in evidence if e.pattern is Pattern.SYSTEM_STATUS]
        # A SystemStatus dump lists everyone who uses each kind now: it replaces.
        for kind in {e.kind for e in status}:
            self._owners[kind] = {e.pid: (e, now) for e in status
                                  if e.kind is kind and e.pid is not None}
        for e in evidence:
            if e.pattern is Pattern.SYSTEM_STATUS:
                continue
            owners = self._owners[e.kind]
            if e.pattern is Pattern.CMIO_CONTROL_PID:
                owners.clear()  # one controlling client at a time; 0 or -1: none
            if e.active and e.pid is not None and len(owners) < MAX_OWNERS:
                owners[e.pid] = (e, now)
            # "removed endpoint <private>" names nobody: owners go when the device stops.

    def processes(self, found: Sequence[AudioProcess] | None) -> None:
        """CoreAudio's process objects; None where the list does not exist (before 14.2)."""
        self._processes = None if found is None else tuple(found)

    # -- output ----------------------------------------------------------------------------
    def result(self, now: float, describe: Describe, unknown: str | None = None) -> Result:
        """The usages at ``now``. ``unknown``: why owners cannot come from the log at all
        right now (it is not being read); then nobody waits for a line that cannot come."""
        usages: set[Usage] = set()
        recheck: list[float] = []
        running = [r for r in self._readings.values() if r.running]
        for reading in running:
            dev = reading.device()
            if reading.kind is DeviceKind.MICROPHONE and self._processes is not None:
                usages |= self._from_processes(dev, self._processes, describe)
                continue
            found, wait = self._from_log(dev, now, describe, unknown)
            usages |= found
            if wait is not None:
                recheck.append(wait)
        if self._processes is not None and not any(
                r.kind is DeviceKind.MICROPHONE for r in running):
            # The process list names an input user before (or without) a device saying so.
            usages |= self._from_processes(ANY_MICROPHONE, self._processes, describe)
        devices = frozenset(r.device() for r in self._readings.values())
        return Result(devices, frozenset(usages), min(recheck) if recheck else None)

    # -- inside ----------------------------------------------------------------------------
    def _running(self, kind: DeviceKind) -> bool:
        return any(r.running and r.kind is kind for r in self._readings.values())

    @staticmethod
    def _from_processes(dev: Device, processes: Sequence[AudioProcess], describe: Describe
                        ) -> set[Usage]:
        out: set[Usage] = set()
        users = [p for p in processes if p.running_input]
        for proc in users:
            ref = describe(proc.pid)
            if ref is None:
                continue  # exited since the list was read
            bundle = f"; bundle {literal(proc.bundle_id, 255)}" if proc.bundle_id else ""
            out.add(Usage(dev, ref, note=f"CoreAudio process list ({Confidence.HIGH}){bundle}",
                          via="coreaudio-process"))
        if not users and dev is not ANY_MICROPHONE:
            out.add(Usage(dev, None, note="in use; CoreAudio's process list names no "
                                          "recording process (another session's?)",
                          via="coreaudio-process"))
        return out

    def _from_log(self, dev: Device, now: float, describe: Describe, unknown: str | None
                  ) -> tuple[set[Usage], float | None]:
        since = self._on_since.get(dev.id, now)
        owners = self._owners[dev.kind]
        several = sum(1 for r in self._readings.values()
                      if r.running and r.kind is dev.kind) > 1
        out: set[Usage] = set()
        for pid, (ev, seen) in sorted(owners.items()):
            if seen < since - EVIDENCE_WINDOW:
                continue  # an old line, from before this device turned on
            ref = describe(pid)
            if ref is None:
                continue
            which = f"; the log does not say which {dev.kind}" if several else ""
            out.add(Usage(dev, ref, note=f"unified log, {ev.pattern} ({ev.confidence}){which}",
                          via="log"))
        if out:
            return out, None
        waited = now - since
        if unknown is None and self._log_known and waited < WAIT:
            return set(), WAIT - waited
        note = unknown if unknown is not None else unknown_note(self.version)
        return {Usage(dev, None, note=note, via="log")}, None
