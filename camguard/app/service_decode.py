"""The service's answers read back into the core objects the printers and the tray know:
its status into a GuardState, its events into MonitorEvents, its history into
SessionRecords. One reading for the CLI and the tray alike."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import (
    Degraded,
    Device,
    DeviceKind,
    EventType,
    HealthEvent,
    MonitorEvent,
    ProcessRef,
    Usage,
    UsageEvent,
)
from camguard.core.origin import origin_from_dict
from camguard.core.state import GuardState

if TYPE_CHECKING:  # the stores (sqlite3) load for history only: status needs none (issue 16)
    from camguard.store.history_record import SessionRecord
    from camguard.store.tamper import AuditRecord


def timestamp(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    return _dt.datetime.fromisoformat(text).timestamp()


def coverage_from_doc(doc: Mapping[str, Any]) -> list[Coverage] | None:
    """A status answer's "coverage" as Coverage entries; None when the answer has none (a
    service that does not report it). An entry that is not one is left out."""
    raw = doc.get("coverage")
    if not isinstance(raw, list):
        return None
    states = {s.value: s for s in CoverageState}
    out = []
    for e in raw:
        if not isinstance(e, dict):
            continue
        sensor, source, state, reason = (e.get(k) for k in ("sensor", "source", "state",
                                                            "reason"))
        if isinstance(sensor, str) and isinstance(source, str) and state in states:
            out.append(Coverage(sensor, source, states[state],
                                reason if isinstance(reason, str) else ""))
    return out


def _process(d: Mapping[str, Any]) -> ProcessRef | None:
    if d.get("pid") is None:
        return None
    return ProcessRef(int(d["pid"]), float(d.get("create_time") or 0.0), d.get("name") or "",
                      d.get("exe") or "", tuple(d.get("cmdline") or ()), d.get("user") or "",
                      tuple(d.get("parents") or ()), _text(d.get("script")))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def state_from_dict(doc: Mapping[str, Any]) -> GuardState:
    devices, usages, seen = [], [], {}
    for d in doc.get("devices", []):
        dev = Device(DeviceKind(d["kind"]), d["id"], d.get("name") or "", d.get("path"),
                     d.get("source") or "")
        devices.append(dev)
        for u in d.get("users", []):
            usage = Usage(dev, _process(u), u.get("note") or "", u.get("via") or "")
            usages.append(usage)
            since = timestamp(u.get("since"))
            if since is not None:
                seen[usage.key] = since
    degraded = tuple(Degraded(g["source"], g["reason"]) for g in doc.get("degraded", []))
    return GuardState(tuple(devices), tuple(usages), degraded, seen)


def event_from_dict(d: Mapping[str, Any]) -> MonitorEvent | None:
    kind = d.get("event")
    at = timestamp(d.get("timestamp")) or 0.0
    if kind in ("degraded", "recovered"):
        reason = Degraded(str(d.get("source")), str(d.get("reason"))) \
            if kind == "degraded" else None
        return HealthEvent(str(d.get("source")), reason, at)
    if kind not in ("started", "stopped", "probe", "probe-storm"):
        return None
    device = Device(DeviceKind(d["kind"]), d["device"], d.get("device_name") or "")
    usage = Usage(device, _process(d), d.get("note") or "", d.get("via") or "")
    count = d.get("count")
    return UsageEvent(EventType(kind), usage, at, timestamp(d.get("since")),
                      probe=d.get("probe") is True,
                      count=count if isinstance(count, int) and not isinstance(count, bool)
                      else None, storm=d.get("storm") is True)


def record_from_dict(d: Mapping[str, Any]) -> SessionRecord:
    from camguard.store.history_record import SessionRecord

    return SessionRecord(
        id=int(d.get("id") or 0), kind=DeviceKind(d["kind"]), device_id=d.get("device") or "",
        device_name=d.get("device_name") or "", pid=d.get("pid"),
        create_time=d.get("create_time"), name=d.get("name"), exe=d.get("exe"),
        exe_sha256=d.get("exe_sha256"), user=d.get("user"),
        cmdline=tuple(d.get("cmdline") or ()), parents=tuple(d.get("parents") or ()),
        start=timestamp(d.get("start")) or 0.0, end=timestamp(d.get("end")),
        duration=d.get("duration_s"),
        decision=d.get("decision"), decided_by=d.get("decided_by"), note=d.get("note") or "",
        end_reason=d.get("end_reason"), via=d.get("via") or "",
        origin=origin_from_dict(d.get("origin")))


def is_session(entry: Mapping[str, Any]) -> bool:
    return entry.get("kind") in {k.value for k in DeviceKind}


def audit_from_dict(d: Mapping[str, Any]) -> AuditRecord:
    """A gap or policy change among the service's history entries."""
    from camguard.store.tamper import AuditRecord

    return AuditRecord(int(d.get("id") or 0), str(d.get("kind")),
                       timestamp(d.get("start")) or 0.0, timestamp(d.get("end")),
                       str(d.get("message") or ""))
