"""Tamper evidence in the history database: each run's start, heartbeat and stop, the gaps
when nothing was watching, and changes of the managed policy file between runs.

A run that was killed (SIGKILL, a crash, a power cut) never writes its stop. The next run
finds that, and records a gap "not monitored from <last heartbeat> to <now>" (``audit``
rows of type ``gap``, migration 3). A policy file whose SHA-256 differs from the one the
last run saw is recorded as ``policy-changed``. ``camguard history`` shows both kinds
among the sessions (``--json``: entries whose ``kind`` is ``gap`` or ``policy-changed``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camguard.core.clock import Clock
from camguard.core.serialize import rfc3339
from camguard.core.text import json_safe, literal
from camguard.store import history_sql
from camguard.store.db import Database
from camguard.store.export import session_dict
from camguard.store.history import HistoryStore
from camguard.store.history_query import ReadView
from camguard.store.history_record import SessionRecord
from camguard.store.textcols import from_db, to_db

log = logging.getLogger(__name__)

GAP = history_sql.GAP
POLICY_CHANGED = history_sql.POLICY_CHANGED
UNCLEAN_STOP = ("camguard was not running: its previous run ended without a clean stop "
                "(killed, crashed or the power was cut)")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A gap (``start``..``end``) or a policy change (at ``start``)."""

    id: int
    type: str
    start: float
    end: float | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape among history entries (``kind`` tells it from a session)."""
        duration = None if self.end is None else round(max(0.0, self.end - self.start), 3)
        return {"kind": self.type, "id": self.id, "start": rfc3339(self.start),
                "end": rfc3339(self.end), "duration_s": duration,
                "message": json_safe(self.message)}

    def describe(self) -> str:
        return literal(self.message, 500)


@dataclass(frozen=True, slots=True)
class StartReport:
    """What a run found when it began."""

    run_id: int
    gap: AuditRecord | None = None
    policy_change: AuditRecord | None = None


class RunLog:
    """Writes this run's start, heartbeats and stop; reads gaps and policy changes.

    Threads: any (calls go through :class:`Database`, serialised). ``begin`` must run
    before anything else writes a heartbeat (HistoryStore writes one with each session),
    or the previous run's last sign of life is overwritten.
    """

    def __init__(self, db: Database, clock: Clock, *, policy_path: Path | None = None) -> None:
        self.db = db
        self._clock = clock
        self._policy_path = policy_path
        self._run_id: int | None = None
        self._policy_hash: str | None = None
        self._lock = threading.Lock()

    def begin(self, pid: int) -> StartReport:
        now = self._clock.now()
        digest = self._hash_policy()

        def op(conn: sqlite3.Connection) -> StartReport:
            last = conn.execute("SELECT id, started_at, last_beat, stopped_at, policy_sha256"
                                " FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            beat_row = conn.execute("SELECT value FROM meta WHERE key = 'heartbeat'").fetchone()
            gap = change = None
            if last is not None and last[3] is None:
                start = float(last[2])
                if beat_row is not None and beat_row[0] is not None:
                    start = max(start, float(beat_row[0]))
                start = min(start, now)
                gap = _insert(conn, GAP, start, now,
                              f"not monitored from {_when(start)} to {_when(now)}: "
                              f"{UNCLEAN_STOP}")
            if last is not None and last[4] != digest:
                change = _insert(conn, POLICY_CHANGED, now, None,
                                 self._change_text(last[4], digest, "since the last run"))
            cur = conn.execute("INSERT INTO runs (started_at, last_beat, pid, policy_sha256)"
                               " VALUES (?, ?, ?, ?)", (now, now, pid, digest))
            return StartReport(int(cur.lastrowid or 0), gap, change)

        report = self.db.write(op)
        with self._lock:
            self._run_id, self._policy_hash = report.run_id, digest
        if report.gap is not None:
            log.warning("%s", report.gap.message)
        if report.policy_change is not None:
            log.warning("%s", report.policy_change.message)
        return report

    def beat(self) -> AuditRecord | None:
        """Note this run is alive; returns a policy change seen since the last beat."""
        now = self._clock.now()
        digest = self._hash_policy()
        with self._lock:
            run_id, old = self._run_id, self._policy_hash
            self._policy_hash = digest
        if run_id is None:
            return None

        def op(conn: sqlite3.Connection) -> AuditRecord | None:
            conn.execute("UPDATE runs SET last_beat = max(last_beat, ?), policy_sha256 = ?"
                         " WHERE id = ?", (now, digest, run_id))
            if old == digest:
                return None
            return _insert(conn, POLICY_CHANGED, now, None,
                           self._change_text(old, digest, "while camguard ran"))

        change = self.db.write(op)
        if change is not None:
            log.warning("%s", change.message)
        return change

    def end(self, reason: str = "requested") -> None:
        """Record a clean stop (a later start then records no gap)."""
        with self._lock:
            run_id, self._run_id = self._run_id, None
        if run_id is None:
            return
        now = self._clock.now()
        self.db.write(lambda c: c.execute(
            "UPDATE runs SET stopped_at = ?, last_beat = max(last_beat, ?), stop_reason = ?"
            " WHERE id = ?", (now, now, to_db(reason), run_id)))

    def _hash_policy(self) -> str | None:
        if self._policy_path is None:
            return None
        from camguard.store.hashing import sha256_file  # hashlib: not for reading history

        return sha256_file(str(self._policy_path)) if self._policy_path.exists() else None

    def _change_text(self, old: str | None, new: str | None, when: str) -> str:
        name = literal(str(self._policy_path), 300)
        if new is None:
            return f"the policy file {name} was removed or became unreadable {when}"
        if old is None:
            return f"the policy file {name} appeared {when} (sha256 {new[:16]}…)"
        return f"the policy file {name} changed {when} (sha256 {old[:16]}… -> {new[:16]}…)"


def _insert(conn: sqlite3.Connection, kind: str, start: float, end: float | None,
            message: str) -> AuditRecord:
    cur = conn.execute("INSERT INTO audit (type, started_at, ended_at, message)"
                       " VALUES (?, ?, ?, ?)", (kind, start, end, to_db(message)))
    return AuditRecord(int(cur.lastrowid or 0), kind, start, end, message)


def _when(ts: float) -> str:
    return rfc3339(ts) or "?"


def audit_records(db: Database | ReadView, *, since: float | None = None,
                  until: float | None = None, types: Sequence[str] = (GAP, POLICY_CHANGED)
                  ) -> list[AuditRecord]:
    """Gaps and policy changes overlapping ``[since, until]``, newest first."""
    sql, params = history_sql.audit_query(since=since, until=until, types=types)
    try:
        rows = db.read(lambda c: c.execute(sql, params).fetchall())
    except sqlite3.OperationalError:  # an in-memory fallback that predates migration 3
        return []
    return [AuditRecord(int(r[0]), str(r[1]), float(r[2]), r[3], from_db(r[4]) or "")
            for r in rows]


def start_of(entry: dict[str, Any]) -> str:
    """Sort key for mixed history entries (RFC 3339 UTC strings sort as times)."""
    return str(entry.get("start") or "")


def history_records(store: HistoryStore, filters: Mapping[str, Any],
                    users: Collection[str] | None, limit: int | None
                    ) -> tuple[list[SessionRecord], list[AuditRecord]]:
    """Sessions matching ``filters`` (since, until, kind, app, device, search) whose process
    belonged to one of ``users`` (None: anyone's), and the gaps and policy changes in the
    same time range, which concern every account. Gaps are left out when a filter narrows
    the sessions to one app, device or text (they say nothing about it). ``limit`` counts
    both kinds together, newest first."""
    since, until = filters.get("since"), filters.get("until")
    # The user column holds the process's user name as psutil gave it (from its real uid):
    # the same name the caller's uid has, or the bare uid when it has no name. The filter
    # and the limit run in SQL (an index per user), never over everyone's rows in Python.
    records = store.sessions(since=since, until=until, kind=filters.get("kind"),
                             device=filters.get("device"), app=filters.get("app"),
                             search=filters.get("search"), limit=limit, users=users)
    audits: list[AuditRecord] = []
    if not any(filters.get(k) for k in history_sql.SESSION_FILTERS):
        audits = audit_records(store.reads, since=since, until=until)
    if limit is None:
        return records, audits
    mine, theirs = history_sql.newest([(r.start, r.id) for r in records],
                                      [(a.start, a.id) for a in audits], limit)
    return [records[n] for n in mine], [audits[n] for n in theirs]


def entry_dicts(records: Sequence[SessionRecord], audits: Sequence[AuditRecord]
                ) -> list[dict[str, Any]]:
    """Sessions (``session_dict``) and audit entries (``kind`` gap / policy-changed) in one
    list, newest first."""
    out = [(r.start, session_dict(r)) for r in records]
    out += [(a.start, a.to_dict()) for a in audits]
    out.sort(key=lambda t: t[0], reverse=True)
    return [d for _t, d in out]


class ServiceHistory:
    """The history as the service serves it (camguard.service.api.HistoryView)."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    def entries(self, filters: Mapping[str, Any], users: frozenset[str] | None,
                limit: int) -> list[dict[str, Any]]:
        records, audits = history_records(self._store, filters, users, limit)
        return entry_dicts(records, audits)
