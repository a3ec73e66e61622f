"""Who streams from which camera and who records from which microphone on Windows, as pure
state machines over what the OS reports (tested on Linux with recorded JSON traces).

* Cameras: IMFSensorActivityMonitor calls back with one report per device listing each
  process that has it open and whether it streams. A report replaces what was known about
  its device; a device that vanishes (its removal, or an empty report) drops its users.
* Microphones: Core Audio capture endpoints and their sessions, polled (a session's
  notifications only wake the poll). A session counts while its state is Active and its pid
  is not 0 (the system-sounds session).

Reports are untrusted input: sizes are bounded, pids must be positive integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_PROCESSES = 256  # per device report
MAX_DEVICES = 64
AUDIO_SESSION_ACTIVE = 1  # AudioSessionState: 0 inactive, 1 active, 2 expired


@dataclass(frozen=True, slots=True)
class DeviceUse:
    device: str  # symbolic link (camera) or endpoint id (microphone)
    name: str
    pids: frozenset[int]


def _pid(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


class CameraActivity:
    """State over sensor activity reports (:meth:`apply` one event at a time)."""

    def __init__(self) -> None:
        self._devices: dict[str, DeviceUse] = {}

    def apply(self, event: Mapping[str, Any]) -> bool:
        """One event: ``{"report": {"device", "name", "processes": [{"pid", "streaming"}]}}``
        or ``{"removed": device}``. True when who uses what changed."""
        before = dict(self._devices)
        if "removed" in event:
            self._devices.pop(str(event["removed"]), None)
        elif "report" in event:
            report = event["report"]
            device = str(report.get("device", ""))
            if not device:
                return False
            procs = report.get("processes") or []
            streaming = frozenset(
                pid for p in list(procs)[:MAX_PROCESSES]
                if isinstance(p, Mapping) and p.get("streaming") is True
                and (pid := _pid(p.get("pid"))) is not None)
            if not streaming:
                self._devices.pop(device, None)
            elif device in self._devices or len(self._devices) < MAX_DEVICES:
                self._devices[device] = DeviceUse(device, str(report.get("name", ""))[:256],
                                                  streaming)
        return before != self._devices

    def users(self) -> list[DeviceUse]:
        return sorted(self._devices.values(), key=lambda d: d.device)


def microphone_users(endpoints: Iterable[Mapping[str, Any]]) -> list[DeviceUse]:
    """One poll: ``[{"id", "name", "sessions": [{"pid", "state"}]}]`` of the active capture
    endpoints -> each endpoint with the pids that record from it (possibly none)."""
    out = []
    for ep in list(endpoints)[:MAX_DEVICES]:
        pids = frozenset(
            pid for s in list(ep.get("sessions") or [])[:MAX_PROCESSES]
            if isinstance(s, Mapping) and s.get("state") == AUDIO_SESSION_ACTIVE
            and (pid := _pid(s.get("pid"))) is not None)
        out.append(DeviceUse(str(ep.get("id", "")), str(ep.get("name", ""))[:256], pids))
    return sorted(out, key=lambda d: d.device)
