"""The session history: every time a program used a camera or microphone, and what was decided.

Repository style: takes core objects (:class:`Usage`, :class:`UsageEvent`) and returns
:class:`SessionRecord`. Text a process controls is stored exactly (see
:func:`camguard.store.textcols.to_db`) and must be rendered with ``core.text.literal``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from camguard.core.clock import Clock
from camguard.core.models import (
    DeviceKind,
    EventType,
    MonitorEvent,
    ProcessRef,
    Usage,
    UsageEvent,
)
from camguard.core.origin import origin_dict
from camguard.core.state import UsageKey
from camguard.store.db import Database
from camguard.store.history_query import ReadView
from camguard.store.history_record import SessionRecord, clip, json_list, record_of
from camguard.store.history_sql import COLUMNS, sessions_query
from camguard.store.textcols import to_db

if TYPE_CHECKING:  # the hashers load when a store hashes: reading history needs none (issue 16)
    from camguard.core.decision import OriginOf
    from camguard.store.hashing import BackgroundHasher, Hasher

log = logging.getLogger(__name__)

ORPHAN_REASON = "ended while camguard was not running"
# Probes are not alarms (core/probes.py): the end_reason of a session that was a probe, and
# of the one entry a probe storm leaves.
PROBE_REASON = "probe"
PROBE_STORM_REASON = "probe-storm"

# Decisions the app records (free text is accepted too; "default:<x>" names a default).
KNOWN_DECISIONS = ("allowed-once", "always-allowed", "killed", "blocked", "muted")

class HistoryStore:
    """Sessions in SQLite. Thread-safe: every method may be called from any thread.

    Calls are serialised on one connection (see :class:`Database`); each takes about a
    millisecond. SHA-256 of executables is computed on a background thread (``hasher``,
    default :class:`ExeHasher` over ``ProcessRef.exe``; ``hash_exes=False`` turns it off,
    e.g. for a read-only CLI) and filled into the row when ready; until then, and for a
    missing or unreadable file, it is NULL. Share the connection with an allow list as
    ``AllowList(store.db)``.
    """

    def __init__(self, path: Path | None, clock: Clock, *,
                 hasher: Hasher | None = None, hash_exes: bool = True,
                 db: Database | None = None, origin_of: OriginOf | None = None) -> None:
        self.db = db if db is not None else Database(path, clock)
        #: Where history queries run: never waits for (nor holds up) a write.
        self.reads = ReadView(self.db)
        self._clock = clock
        self._lock = threading.RLock()
        # usage key -> (database generation, session id) of sessions this store opened.
        self._open: dict[UsageKey, tuple[int, int]] = {}
        self._hashes: BackgroundHasher | None = None
        self._origins: BackgroundHasher | None = None
        if hash_exes:
            from camguard.store.hashing import BackgroundHasher, ExeHasher

            self._hashes = BackgroundHasher(hasher or ExeHasher())
        # Where each session's executable comes from, on its own thread (a first look at a
        # package's file reads it whole to check it against dpkg's md5sum).
            if origin_of is not None:
                self._origins = BackgroundHasher(_origin_text(origin_of))
        # The previous run's last sign of life, read before this run writes its own.
        self._previous_beat = self.last_heartbeat()

    @property
    def warning(self) -> str | None:
        """A problem to show the user (damaged file moved aside, memory only), or None."""
        return self.db.warning

    def close(self) -> None:
        if self._hashes is not None:
            self._hashes.stop()
        if self._origins is not None:
            self._origins.stop()
        self.reads.close()
        self.db.close()

    def wait_for_hashes(self, timeout: float | None = None) -> bool:
        """Wait until every executable's hash (and origin) is stored."""
        done = True if self._hashes is None else self._hashes.wait(timeout)
        return done and (True if self._origins is None else self._origins.wait(timeout))

    # -- writing -----------------------------------------------------------------------
    def open_session(self, usage: Usage, at: float) -> int:
        """Store a new open session for ``usage`` that started at ``at``; return its id."""
        p = usage.process
        d = usage.device
        row = (
            d.kind.value, to_db(clip(d.id)), to_db(clip(d.name)), to_db(usage.via),
            None if p is None else to_db(clip(p.name)),
            None if p is None else to_db(clip(p.exe)),
            None if p is None else p.pid, None if p is None else p.create_time,
            None if p is None else to_db(clip(p.user)),
            None if p is None else json_list(p.cmdline),
            None if p is None else json_list(p.parents),
            at, to_db(clip(usage.note)),
        )

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO sessions (device_kind, device_id, device_name, via, app_name, exe,"
                " pid, create_time, user, cmdline, parents, started_at, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            _beat(conn, at)
            return int(cur.lastrowid or 0)

        session_id = self.db.write(op)
        if self._hashes is not None and p is not None and p.exe:
            generation = self.db.generation
            self._hashes.submit(p, lambda digest: self._set_sha256(generation, session_id,
                                                                   digest))
        if self._origins is not None and p is not None and p.exe:
            generation = self.db.generation
            self._origins.submit(p, lambda text: self._set_origin(generation, session_id, text))
        return session_id

    def close_session(self, session_id: int, at: float, reason: str | None = None) -> bool:
        """End an open session at ``at`` (never before its start); False if not open."""
        with self._lock:
            for key, (_gen, sid) in list(self._open.items()):
                if sid == session_id:
                    del self._open[key]

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE sessions SET ended_at = max(?, started_at),"
                " duration_s = max(?, started_at) - started_at, end_reason = ?"
                " WHERE id = ? AND ended_at IS NULL", (at, at, to_db(reason), session_id))
            _beat(conn, at)
            return cur.rowcount

        return self.db.write(op) == 1

    def record_decision(self, session_id: int, decision: str | None,
                        decided_by: str | None) -> bool:
        """What the user or a rule decided for a session; False if there is no such session."""
        return self.db.write(lambda c: c.execute(
            "UPDATE sessions SET decision = ?, decided_by = ? WHERE id = ?",
            (to_db(decision), to_db(decided_by), session_id)).rowcount) == 1

    def add_note(self, session_id: int, text: str) -> bool:
        """Add a line to a session's note (why an app was not paused while asked...)."""
        return self.db.write(lambda c: c.execute(
            "UPDATE sessions SET note = CASE WHEN coalesce(note, '') = '' THEN ? ELSE"
            " note || '; ' || ? END WHERE id = ?", (text, text, session_id)).rowcount) == 1

    def record_event(self, ev: UsageEvent) -> int:
        """Open (started) or close (stopped) the session of ``ev.usage``; return its id.
        A probe is a closed session whose end_reason is "probe"; a probe storm one entry
        from its window's first probe to now, end_reason "probe-storm", the count in its
        note.

        A stop for a usage this store never saw start (the store was opened while it ran)
        is stored as a closed session from ``ev.since`` (or ``ev.at``).
        """
        key = ev.usage.key
        if ev.type is EventType.PROBE_STORM:  # an alert, kept as one closed entry
            session_id = self.open_session(ev.usage, ev.since if ev.since is not None else ev.at)
            self.close_session(session_id, ev.at, PROBE_STORM_REASON)
            return session_id
        with self._lock:
            known = self.session_for(key)
            if ev.type is EventType.STARTED:
                if known is not None:
                    return known
                session_id = self.open_session(ev.usage, ev.at)
                self._open[key] = (self.db.generation, session_id)
                return session_id
            self._open.pop(key, None)
            session_id = -1 if known is None else known
            if session_id < 0:
                start = ev.since if ev.since is not None else ev.at
                session_id = self.open_session(ev.usage, start)
            probe = ev.probe or ev.type is EventType.PROBE
            self.close_session(session_id, ev.at, PROBE_REASON if probe else None)
            return session_id

    def session_for(self, key: UsageKey) -> int | None:
        """The id of the open session recorded for a usage key (to attach a decision)."""
        with self._lock:
            entry = self._open.get(key)
        # A session opened before a damaged database was replaced no longer exists.
        return entry[1] if entry is not None and entry[0] == self.db.generation else None

    def find_session(self, key: UsageKey, since: float) -> SessionRecord | None:
        """The newest session of the usage ``key`` (kind, device, pid, create time) that
        started at ``since`` or later, open or closed (a person may answer after the app
        stopped); None when there is none."""
        kind, device, pid, create_time = key
        open_id = self.session_for(key)
        args: tuple[object, ...]
        if open_id is not None:
            where, args = "id = ?", (open_id,)
        else:
            where = ("started_at >= ? AND device_kind = ? AND device_id = ? AND pid IS ?"
                     " AND create_time IS ?")
            args = (since, kind, to_db(clip(device)), pid, create_time)
        row = self.db.read(lambda c: c.execute(
            f"SELECT {COLUMNS} FROM sessions WHERE {where}"  # noqa: S608 - constant text
            " ORDER BY started_at DESC LIMIT 1", args).fetchone())
        return None if row is None else record_of(row)

    def heartbeat(self, at: float | None = None) -> None:
        """Note that camguard was alive at ``at``: orphans are closed at the last heartbeat."""
        when = self._clock.now() if at is None else at
        self.db.write(lambda c: _beat(c, when))

    def last_heartbeat(self) -> float | None:
        row = self.db.read(lambda c: c.execute(
            "SELECT value FROM meta WHERE key = 'heartbeat'").fetchone())
        return None if row is None or row[0] is None else float(row[0])

    def close_orphans(self, at: float) -> int:
        """Close sessions left open by a camguard that died; return how many.

        Each ends at the last heartbeat written before this store was opened (never before
        its own start, never after ``at``). Sessions opened through this store are not
        touched. Call once at start-up: two camguards sharing one database would close each
        other's sessions.
        """
        with self._lock:
            mine = {sid for gen, sid in self._open.values() if gen == self.db.generation}
        beat = self._previous_beat

        def op(conn: sqlite3.Connection) -> int:
            count = 0
            for sid, start in conn.execute(
                    "SELECT id, started_at FROM sessions WHERE ended_at IS NULL").fetchall():
                if sid in mine:
                    continue
                end = max(start, min(beat if beat is not None else start, at))
                conn.execute(
                    "UPDATE sessions SET ended_at = ?, duration_s = ?, end_reason = ?"
                    " WHERE id = ?", (end, end - start, ORPHAN_REASON, sid))
                count += 1
            return count

        return self.db.write(op)

    def purge_older_than(self, ts: float) -> int:
        """Delete closed sessions that ended before ``ts`` (retention); return how many."""
        return self.db.write(lambda c: c.execute(
            "DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ?",
            (ts,)).rowcount)

    # -- reading -----------------------------------------------------------------------
    def get(self, session_id: int) -> SessionRecord | None:
        row = self.db.read(lambda c: c.execute(
            f"SELECT {COLUMNS} FROM sessions WHERE id = ?",  # noqa: S608 - constant columns
            (session_id,)).fetchone())
        return None if row is None else record_of(row)

    def sessions(self, *, since: float | None = None, until: float | None = None,
                 kind: DeviceKind | str | None = None, device: str | None = None,
                 app: str | None = None, search: str | None = None,
                 limit: int | None = None, users: Collection[str] | None = None
                 ) -> list[SessionRecord]:
        """Sessions, newest first, that overlap ``[since, until]`` and match every filter.

        ``device`` matches a device id or name exactly; ``app`` matches the app name
        (case-insensitively), the full executable path or its file name; ``search`` is a
        case-insensitive substring of any text field; ``users``: only sessions whose process
        belonged to one of these user names (None: anyone's), found through the
        ``sessions_by_user`` index. Runs on :attr:`reads`, never waiting for a write.
        """
        sql, params = sessions_query(since=since, until=until, kind=kind, device=device,
                                     app=app, search=search, limit=limit, users=users)
        rows = self.reads.read(lambda c: c.execute(sql, params).fetchall())
        return [r for r in map(record_of, rows) if r is not None]

    # -- internals ---------------------------------------------------------------------
    def _set_origin(self, generation: int, session_id: int, text: str | None) -> None:
        if text is None or generation != self.db.generation:
            return
        self.db.write(lambda c: c.execute(
            "UPDATE sessions SET origin = ? WHERE id = ?", (text, session_id)))

    def _set_sha256(self, generation: int, session_id: int, digest: str | None) -> None:
        if digest is None or generation != self.db.generation:
            return  # unreadable exe (stays NULL), or the session went with a damaged file
        self.db.write(lambda c: c.execute(
            "UPDATE sessions SET exe_sha256 = ? WHERE id = ?", (digest, session_id)))


def _origin_text(origin_of: OriginOf | None) -> Hasher:
    def text(process: ProcessRef) -> str | None:
        found = None if origin_of is None else origin_of(process)
        return None if found is None else json.dumps(origin_dict(found), ensure_ascii=True)

    return text


def _beat(conn: sqlite3.Connection, at: float) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES ('heartbeat', ?)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (at,))


class HistorySink:
    """A Monitor sink that records usage events; it logs failures and never raises."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    def __call__(self, ev: MonitorEvent) -> None:
        if not isinstance(ev, UsageEvent):
            return
        try:
            self._store.record_event(ev)
        except Exception:
            log.exception("could not record a %s usage in the history", ev.type.value)
