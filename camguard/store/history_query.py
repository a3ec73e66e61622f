"""History queries: the SQL for a filtered list of sessions, and the read-only connection
history queries run on (so they never hold up the monitor's writes)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Collection
from typing import TypeVar
from urllib.parse import quote

from camguard.core.models import DeviceKind
from camguard.store.db import BUSY_TIMEOUT_S, Database, to_db

log = logging.getLogger(__name__)

T = TypeVar("T")

COLUMNS = ("id, device_kind, device_id, device_name, via, app_name, exe, exe_sha256, pid, "
           "create_time, user, cmdline, parents, started_at, ended_at, duration_s, decision, "
           "decided_by, note, end_reason, origin")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(text: str) -> str:
    return f"%{_escape_like(text)}%"


def sessions_query(*, since: float | None = None, until: float | None = None,
                   kind: DeviceKind | str | None = None, device: str | None = None,
                   app: str | None = None, search: str | None = None,
                   limit: int | None = None, users: Collection[str] | None = None
                   ) -> tuple[str, list[object]]:
    """The SQL ``HistoryStore.sessions`` runs, and its parameters (tests check its plan)."""
    where: list[str] = []
    params: list[object] = []
    if users is not None:
        names = sorted(users)
        where.append(f"user IN ({', '.join('?' for _ in names)})" if names else "0")
        params += [to_db(n) for n in names]
    if since is not None:
        where.append("(ended_at IS NULL OR ended_at >= ?)")
        params.append(since)
    if until is not None:
        where.append("started_at <= ?")
        params.append(until)
    if kind is not None:
        where.append("device_kind = ?")
        params.append(DeviceKind(kind).value)
    if device is not None:
        where.append("(device_id = ? OR device_name = ?)")
        params += [to_db(device), to_db(device)]
    if app is not None and "/" in app:  # a path names one executable exactly
        where.append("(app_name = ? COLLATE NOCASE OR exe = ?)")
        params += [to_db(app), to_db(app)]
    elif app is not None:  # a name: the app's own, or its executable's file name
        where.append("(app_name = ? COLLATE NOCASE OR exe LIKE ? ESCAPE '\\')")
        params += [to_db(app), to_db("%/" + _escape_like(app))]
    if search:
        fields = ("app_name", "exe", "cmdline", "user", "device_id", "device_name",
                  "note", "decision", "decided_by", "end_reason", "exe_sha256")
        where.append("(" + " OR ".join(f"{f} LIKE ? ESCAPE '\\'" for f in fields) + ")")
        params += [_like(search)] * len(fields)
    sql = f"SELECT {COLUMNS} FROM sessions"  # noqa: S608 - only constant fragments
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(max(0, int(limit)))
    return sql, params


class ReadView:
    """A second, read-only connection for history queries, so a long read (a request of the
    service, the history window) never holds the lock the monitor's writes take.

    In WAL mode readers and the writer do not block each other
    (https://www.sqlite.org/wal.html, "Concurrency"); only the Python-side lock of the one
    shared connection did. Reads take turns on this connection's own lock. A database kept
    in memory, or one being replaced after damage, is read through the owner instead (it
    alone decides what is damaged).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._generation = -1

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db.in_memory or self._db.path is None:
            return self._db.read(fn)
        with self._lock:
            try:
                if self._conn is None or self._generation != self._db.generation:
                    self._close()
                    self._conn = sqlite3.connect(
                        f"file:{quote(str(self._db.path))}?mode=ro", uri=True,
                        timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
                    self._generation = self._db.generation
                return fn(self._conn)
            except sqlite3.Error:
                self._close()
        return self._db.read(fn)  # the owner's connection judges (and repairs) damage

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                log.debug("closing the read connection failed", exc_info=True)
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()
