"""The read-only connection history queries run on (so they never hold up the monitor's
writes). Their SQL is in :mod:`camguard.store.history_sql`."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote

from camguard.store.db import BUSY_TIMEOUT_S, Database

log = logging.getLogger(__name__)

T = TypeVar("T")


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
