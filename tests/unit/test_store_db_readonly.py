"""Read-only opening of the history database: never created, moved, migrated or written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.store.db import Database, DatabaseUnreadable
from camguard.store.migrations import MIGRATIONS, migrate, schema_version


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize(("content", "match"), [
    (b"a plain text file\n" * 50, r"not a camguard history database \(file is not a database\)"),
    (b"", r"no sessions in it"),
])
def test_a_file_that_is_not_a_history_is_refused_and_left_alone(
        tmp_path: Path, content: bytes, match: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(content)
    with pytest.raises(DatabaseUnreadable, match=match):
        Database(notes, FrozenClock(), read_only=True)
    assert listing(tmp_path) == {"notes.txt": content}


def test_a_missing_file_is_never_created(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnreadable, match="is not a file"):
        Database(tmp_path / "nothing.sqlite3", FrozenClock(), read_only=True)
    assert listing(tmp_path) == {}


def test_another_apps_sqlite_file_is_not_migrated(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (t TEXT)")
    conn.close()
    before = other.read_bytes()
    with pytest.raises(DatabaseUnreadable, match="no sessions in it"):
        Database(other, FrozenClock(), read_only=True)
    assert other.read_bytes() == before


def test_an_older_schema_is_read_from_a_copy_and_the_file_keeps_its_version(
        tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS, target=1)
    conn.execute("INSERT INTO sessions (device_kind, device_id, started_at) VALUES "
                 "('camera', '/dev/video0', 1.0)")
    conn.close()
    before = path.read_bytes()
    db = Database(path, FrozenClock(), read_only=True)
    try:
        assert db.read(lambda c: c.execute("SELECT count(*) FROM sessions").fetchone()) == (1,)
        assert db.read(schema_version) == MIGRATIONS[-1].version  # migrated, in memory
        with pytest.raises(sqlite3.OperationalError, match="opened read-only"):
            db.write(lambda c: c.execute("DELETE FROM sessions"))
    finally:
        db.close()
    assert path.read_bytes() == before
