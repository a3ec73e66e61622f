"""macOS's permission records (TCC.db): which apps were granted or denied the camera, the
microphone and screen recording, and when. Reads a copy of the SQLite file read-only, on any
OS, so an investigator can look at a Mac's files from elsewhere.

The ``access`` table's columns changed over the years (as public write-ups such as Rainforest
QA's "A deep dive into macOS TCC.db" describe them; no real file was read here): before macOS 11 the
answer is ``allowed`` (0/1), from 11 on ``auth_value`` (0 denied, 1 unknown, 2 allowed,
3 limited); ``last_modified`` (Unix seconds) exists since 10.14. The reader asks SQLite which
columns exist and uses what is there.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SERVICES = {"kTCCServiceCamera": "camera", "kTCCServiceMicrophone": "microphone",
            "kTCCServiceScreenCapture": "screen"}
MAX_ROWS = 100_000
MAX_CLIENT = 1024
LOCK_WAIT = 0.5  # seconds: a file locked longer than this is reported, not waited for


class TccError(OSError):
    """The file cannot be read as a TCC database; the message says why, for a person."""


@dataclass(frozen=True, slots=True)
class TccEntry:
    """One app's answer for one service. ``allowed`` is None for answers that are neither
    (auth_value 1 "unknown", 3 "limited"); ``last_modified`` None where the schema has none."""

    service: str
    client: str
    allowed: bool | None
    last_modified: int | None
    database: str

    def as_json(self) -> dict[str, object]:
        return {"service": self.service, "client": self.client, "allowed": self.allowed,
                "last_modified": self.last_modified}


def read_tcc(path: Path) -> list[TccEntry]:
    """Every camera, microphone and screen-recording row of ``path``, oldest change first."""
    if not path.is_file():
        raise TccError(f"{path}: no such file")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT)
    except sqlite3.Error as exc:
        raise TccError(f"{path}: cannot open: {exc}") from exc
    try:
        return _read(conn, path)
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise TccError(f"{path}: the database is locked by another program (tccd?); "
                           "copy the file and its -wal file and read the copy") from exc
        raise TccError(f"{path}: not a TCC database ({text})") from exc
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, path: Path) -> list[TccEntry]:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(access)")}
    if not {"service", "client"} <= columns:
        raise TccError(f"{path}: not a TCC database (no access table with service and "
                       "client columns)")
    if "auth_value" in columns:
        answer = "auth_value"
    elif "allowed" in columns:
        answer = "allowed"
    else:
        raise TccError(f"{path}: unknown TCC schema (neither auth_value nor allowed)")
    modified = "last_modified" if "last_modified" in columns else "NULL"
    marks = ",".join("?" * len(SERVICES))
    # Column names come from the fixed set above, never from the file: no injection.
    sql = (f"SELECT service, client, {answer}, {modified} FROM access "  # noqa: S608
           f"WHERE service IN ({marks}) LIMIT {MAX_ROWS}")
    conn.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    out = []
    for service, client, value, when in conn.execute(sql, tuple(SERVICES)):
        if not isinstance(client, str):
            continue
        out.append(TccEntry(SERVICES[service], client[:MAX_CLIENT], _allowed(answer, value),
                            when if isinstance(when, int) else None, str(path)))
    out.sort(key=lambda e: (e.last_modified is None, e.last_modified or 0, e.service,
                            e.client))
    return out


def _allowed(answer: str, value: object) -> bool | None:
    if not isinstance(value, int):
        return None
    if answer == "allowed":  # before macOS 11
        return value != 0
    return {0: False, 2: True}.get(value)
