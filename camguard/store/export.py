"""History sessions as JSON objects and CSV rows (``camguard history``, the export button)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

from camguard.core.origin import origin_dict
from camguard.core.serialize import rfc3339
from camguard.core.text import json_safe
from camguard.store.history_record import SessionRecord


def _opt(text: str | None) -> str | None:
    return None if text is None else json_safe(text)


def session_dict(rec: SessionRecord) -> dict[str, Any]:
    """A stable JSON shape; timestamps are RFC 3339 UTC, text is valid UTF-8 (json_safe)."""
    return {
        "id": rec.id,
        "kind": rec.kind.value,
        "device": json_safe(rec.device_id),
        "device_name": json_safe(rec.device_name),
        "pid": rec.pid,
        "create_time": rec.create_time,
        "name": _opt(rec.name),
        "exe": _opt(rec.exe),
        "exe_sha256": rec.exe_sha256,
        "user": _opt(rec.user),
        "cmdline": [json_safe(a) for a in rec.cmdline],
        "parents": [json_safe(a) for a in rec.parents],
        "start": rfc3339(rec.start),
        "end": rfc3339(rec.end),
        "duration_s": None if rec.duration is None else round(rec.duration, 3),
        "decision": _opt(rec.decision),
        "decided_by": _opt(rec.decided_by),
        "note": json_safe(rec.note) if rec.note else None,
        "end_reason": _opt(rec.end_reason),
        "via": rec.via,
        "origin": origin_dict(rec.origin),
    }


CSV_COLUMNS = ("start", "end", "duration_s", "kind", "device", "device_name", "pid", "name",
               "exe", "exe_sha256", "user", "cmdline", "decision", "decided_by", "end_reason",
               "note")

# Spreadsheets run a cell that starts with one of these as a formula ("CSV injection",
# https://owasp.org/www-community/attacks/CSV_Injection); a process picks its own name, so
# such text cells get a leading single quote, which makes the spreadsheet show them as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    return value


def csv_row(rec: SessionRecord) -> list[Any]:
    d = session_dict(rec)
    d["cmdline"] = json.dumps(d["cmdline"], ensure_ascii=False)
    return [_cell(d[c]) for c in CSV_COLUMNS]


def write_csv(records: Iterable[SessionRecord], out: IO[str]) -> None:
    """A header line, then one row per session (the csv module does the quoting)."""
    import csv  # here: --json and the table do not need it (issue 16)

    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for rec in records:
        writer.writerow(csv_row(rec))
