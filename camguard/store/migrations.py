"""Numbered schema migrations for the camguard database, tracked with ``PRAGMA user_version``.

Rules: a migration is never edited once released (add a new one instead); each runs in its
own transaction together with the ``user_version`` bump, so a crash or a full disk leaves
the database at the previous version, never half-way. Columns that hold text a process
controls are declared without a type: they hold TEXT, or a BLOB when the text carries bytes
that are not UTF-8 (see :func:`camguard.store.textcols.to_db`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "session history and the heartbeat", (
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY NOT NULL,
            value
        )""",
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            device_kind TEXT NOT NULL,
            device_id NOT NULL,
            device_name,
            via TEXT,
            app_name,
            exe,
            exe_sha256 TEXT,
            pid INTEGER,
            create_time REAL,
            user,
            cmdline,
            parents,
            started_at REAL NOT NULL,
            ended_at REAL,
            duration_s REAL,
            decision TEXT,
            decided_by TEXT,
            note,
            end_reason TEXT
        )""",
        "CREATE INDEX sessions_by_start ON sessions (started_at)",
        # Small and hot: orphan closing and "what is open" only look at open sessions.
        "CREATE INDEX sessions_open ON sessions (ended_at) WHERE ended_at IS NULL",
    )),
    Migration(2, "allow list: an executable path plus its SHA-256, per device kind", (
        """CREATE TABLE allowlist (
            id INTEGER PRIMARY KEY,
            exe NOT NULL,
            sha256 TEXT NOT NULL,
            device_kind TEXT NOT NULL,
            added_at REAL NOT NULL,
            note NOT NULL DEFAULT '',
            UNIQUE (exe, device_kind)
        )""",
    )),
    Migration(3, "tamper evidence: each run of the recorder, and gaps and policy changes", (
        # One row per run; stopped_at stays NULL when a run never stopped cleanly (killed,
        # crashed, power lost): the next run then records a gap from its last_beat.
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at REAL NOT NULL,
            last_beat REAL NOT NULL,
            stopped_at REAL,
            stop_reason TEXT,
            pid INTEGER,
            policy_sha256 TEXT
        )""",
        # type 'gap' (not monitored from started_at to ended_at) or 'policy-changed'.
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            type TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            message NOT NULL
        )""",
        "CREATE INDEX audit_by_start ON audit (started_at)",
    )),
    Migration(4, "history by account: an index for each user's own sessions", (
        # The service answers an ordinary account's history with only its sessions,
        # newest first: this index finds them without reading anyone else's.
        "CREATE INDEX sessions_by_user ON sessions (user, started_at)",
    )),
    Migration(5, "where each session's app comes from, and what an allow-list entry trusts", (
        # JSON (core.origin.origin_dict): {"kind": "deb", "name": "firefox-esr", ...}.
        "ALTER TABLE sessions ADD COLUMN origin TEXT",
        # "deb:firefox-esr" when the entry trusts a package (its updates keep the entry).
        "ALTER TABLE allowlist ADD COLUMN origin TEXT",
    )),
)

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(Exception):
    """The database was written by a newer camguard; it is left untouched."""


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS,
            target: int | None = None) -> int:
    """Bring ``conn`` (autocommit mode) up to ``target`` (default: the newest); return it.

    Raises :class:`SchemaTooNew` for a database newer than ``migrations`` know, and lets
    ``sqlite3.Error`` through (the transaction of the failed step is rolled back).
    """
    latest = migrations[-1].version if migrations else 0
    goal = latest if target is None else target
    current = schema_version(conn)
    if current > latest:
        raise SchemaTooNew(f"schema version {current} is newer than this camguard knows "
                           f"({latest})")
    for step in migrations:
        if step.version <= current or step.version > goal:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another camguard may have migrated meanwhile.
            if schema_version(conn) >= step.version:
                conn.execute("COMMIT")
                continue
            for statement in step.statements:
                conn.execute(statement)
            # PRAGMA takes no bound parameters; the version is an int from this module.
            conn.execute(f"PRAGMA user_version = {int(step.version):d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        current = step.version
    return schema_version(conn)
