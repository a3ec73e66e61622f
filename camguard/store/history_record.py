"""One stored session as the history hands it out, and how its fields go to and from a row.

Text a process controls is stored exactly (:func:`camguard.store.textcols.to_db`), each field
clipped to :data:`MAX_FIELD_CHARS` with a note of how much was cut.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from camguard.core.models import Device, DeviceKind, ProcessRef
from camguard.core.origin import ExeOrigin, origin_from_json
from camguard.store.textcols import from_db, to_db

log = logging.getLogger("camguard.store.history")

# A process may hand us megabytes of command line; one session must not bloat the database
# without bound, so each text field keeps this many characters and says how much was cut.
MAX_FIELD_CHARS = 256 * 1024


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored session. ``end`` is None while it is still open."""

    id: int
    kind: DeviceKind
    device_id: str
    device_name: str
    pid: int | None
    create_time: float | None
    name: str | None
    exe: str | None
    exe_sha256: str | None
    user: str | None
    cmdline: tuple[str, ...]
    parents: tuple[str, ...]
    start: float
    end: float | None
    duration: float | None
    decision: str | None
    decided_by: str | None
    note: str
    end_reason: str | None
    via: str = ""
    origin: ExeOrigin | None = None  # where its executable comes from (None: not known)

    @property
    def is_open(self) -> bool:
        return self.end is None

    @property
    def device(self) -> Device:
        return Device(self.kind, self.device_id, self.device_name)

    @property
    def process(self) -> ProcessRef | None:
        if self.pid is None:
            return None
        return ProcessRef(self.pid, self.create_time or 0.0, self.name or "", self.exe or "",
                          self.cmdline, self.user or "", self.parents)


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [camguard cut {len(text) - limit} characters]"


def _clip_args(args: Sequence[str], limit: int = MAX_FIELD_CHARS) -> list[str]:
    out: list[str] = []
    budget = limit
    for i, arg in enumerate(args):
        if len(arg) > budget:
            out.append(clip(arg, budget))
            if i + 1 < len(args):
                out.append(f"[camguard cut {len(args) - i - 1} more arguments]")
            break
        out.append(arg)
        budget -= len(arg)
    return out


def json_list(items: Sequence[str]) -> str | bytes | None:
    # ensure_ascii=False keeps non-ASCII text searchable with LIKE; a lone surrogate stays
    # raw in the JSON text and to_db() stores that one as a BLOB, exactly.
    return to_db(json.dumps(_clip_args(items), ensure_ascii=False))


def _from_json_list(value: object) -> tuple[str, ...]:
    text = from_db(value)
    if not text:
        return ()
    try:
        items = json.loads(text)
    except ValueError:
        return (text,)
    return tuple(str(i) for i in items) if isinstance(items, list) else (str(items),)


def record_of(row: Sequence[Any]) -> SessionRecord | None:
    try:
        kind = DeviceKind(row[1])
    except ValueError:
        log.warning("skipping history row %s with unknown device kind %r", row[0], row[1])
        return None
    return SessionRecord(
        id=int(row[0]), kind=kind, device_id=from_db(row[2]) or "",
        device_name=from_db(row[3]) or "", via=from_db(row[4]) or "", name=from_db(row[5]),
        exe=from_db(row[6]), exe_sha256=row[7], pid=row[8], create_time=row[9],
        user=from_db(row[10]), cmdline=_from_json_list(row[11]),
        parents=_from_json_list(row[12]), start=float(row[13]), end=row[14],
        duration=row[15], decision=from_db(row[16]), decided_by=from_db(row[17]),
        note=from_db(row[18]) or "", end_reason=from_db(row[19]),
        origin=origin_from_json(row[20]) if len(row) > 20 else None)
