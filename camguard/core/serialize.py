"""Stable JSON shapes for devices, usages, events and state (CLI output, logs, the socket API)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from camguard.core.models import Degraded, Device, HealthEvent, MonitorEvent, ProcessRef, Usage
from camguard.core.origin import ExeOrigin, origin_dict
from camguard.core.state import GuardState
from camguard.core.text import json_safe


def rfc3339(ts: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-22T23:50:28.123Z``."""
    if ts is None:
        return None
    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def device_dict(d: Device) -> dict[str, Any]:
    return {"kind": d.kind.value, "id": json_safe(d.id), "name": json_safe(d.name),
            "path": None if d.path is None else json_safe(d.path), "source": d.source}


def process_dict(p: ProcessRef | None) -> dict[str, Any]:
    if p is None:
        return {"pid": None, "create_time": None, "name": None, "exe": None, "user": None,
                "cmdline": None, "parents": None}
    return {
        "pid": p.pid,
        "create_time": p.create_time,
        "name": json_safe(p.name),
        "exe": json_safe(p.exe),
        "user": json_safe(p.user),
        "cmdline": [json_safe(a) for a in p.cmdline],
        "parents": [json_safe(n) for n in p.parents],
    } | ({"script": json_safe(p.script)} if p.script else {})


# Where a usage's executable comes from (None: unknown, or not looked up).
OriginFor = Callable[[Usage], "ExeOrigin | None"]


def user_dict(u: Usage, since: float | None, origin: ExeOrigin | None = None
              ) -> dict[str, Any]:
    out = process_dict(u.process)
    out["since"] = rfc3339(since)
    out["via"] = u.via
    out["note"] = json_safe(u.note) if u.note else None
    out["origin"] = origin_dict(origin)
    return out


def degraded_dict(d: Degraded) -> dict[str, Any]:
    return {"source": d.source, "reason": json_safe(d.reason)}


def state_dict(state: GuardState, origin: OriginFor | None = None) -> dict[str, Any]:
    devices = []
    for d in state.devices:
        entry = device_dict(d)
        entry["users"] = [user_dict(u, state.first_seen.get(u.key),
                                    None if origin is None else origin(u))
                          for u in state.users_of(d)]
        devices.append(entry)
    return {"devices": devices, "degraded": [degraded_dict(d) for d in state.degraded]}


def event_dict(ev: MonitorEvent, origin: ExeOrigin | None = None) -> dict[str, Any]:
    if isinstance(ev, HealthEvent):
        return {
            "event": "degraded" if ev.degraded else "recovered",
            "source": ev.source,
            "reason": json_safe(ev.degraded.reason) if ev.degraded else None,
            "timestamp": rfc3339(ev.at),
        }
    u = ev.usage
    out: dict[str, Any] = {
        "event": ev.type.value,
        "kind": u.device.kind.value,
        "device": json_safe(u.device.id),
        "device_name": json_safe(u.device.name),
        "timestamp": rfc3339(ev.at),
    }
    out.update(process_dict(u.process))
    out["via"] = u.via
    out["note"] = json_safe(u.note) if u.note else None
    out["origin"] = origin_dict(origin)
    if ev.since is not None:
        out["since"] = rfc3339(ev.since)
        out["duration_s"] = round(max(0.0, ev.at - ev.since), 3)
    if ev.probe:
        out["probe"] = True  # a device-node session under the probe threshold
    if ev.count is not None:
        out["count"] = ev.count  # a probe storm's probes
    if ev.storm:
        out["storm"] = True  # opened while its app probe-storms: asked about if it lasts
    return out
