"""The SQLite file: private modes, WAL, migrations from every old version, damaged files."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.store.allowlist import AllowList
from camguard.store.db import Database, _wal_header_ok
from camguard.store.history import HistoryStore
from camguard.store.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    migrate,
    schema_version,
)
from camguard.store.textcols import from_db, to_db

ROOT = Path(__file__).resolve().parents[2]


def usage(i: int, name: str = "app") -> Usage:
    return Usage(Device(DeviceKind.CAMERA, "/dev/video0", "Cam"),
                 ProcessRef(1000 + i, 1.5, f"{name}{i}", "/usr/bin/app", ("app", "x" * 1000),
                            "alice", ("bash",)))


def fill(path: Path, n: int = 300) -> None:
    store = HistoryStore(path, FrozenClock(), hash_exes=False)
    for i in range(n):
        sid = store.open_session(usage(i), 100.0 + i)
        store.close_session(sid, 101.0 + i)
    store.close()  # the last connection closing checkpoints the WAL into the file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return sorted(conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall())


# -- modes and journal -------------------------------------------------------------------
def test_files_are_private_and_wal_even_with_umask_zero(tmp_path: Path) -> None:
    # A subprocess, because the umask is process-wide.
    db = tmp_path / "data" / "history.sqlite3"
    script = textwrap.dedent(f"""
        import os
        os.umask(0)
        from pathlib import Path
        from camguard.core.clock import FrozenClock
        from camguard.core.models import Device, DeviceKind, Usage
        from camguard.store.history import HistoryStore
        s = HistoryStore(Path({str(db)!r}), FrozenClock(), hash_exes=False)
        s.open_session(Usage(Device(DeviceKind.CAMERA, "/dev/video0"), None), 1.0)
        print(s.db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]))
        os._exit(0)  # keep -wal and -shm on disk
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "wal"
    for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert f.exists(), f
        assert mode(f) == 0o600, (f, oct(mode(f)))
    assert mode(db.parent) == 0o700


def test_loose_existing_file_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    fill(db, 1)
    os.chmod(db, 0o644)
    store = HistoryStore(db, FrozenClock(), hash_exes=False)
    assert mode(db) == 0o600
    assert len(store.sessions()) == 1
    store.close()


def test_a_symlink_or_directory_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    link = tmp_path / "history.sqlite3"
    link.symlink_to(target)
    store = HistoryStore(link, FrozenClock(), hash_exes=False)
    assert store.db.in_memory and store.warning and "memory" in store.warning
    assert target.read_bytes() == b"precious"
    store.open_session(usage(1), 1.0)  # still works, in memory
    assert len(store.sessions()) == 1
    store.close()


# -- migrations --------------------------------------------------------------------------
def test_migrations_are_numbered_one_by_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len(MIGRATIONS) == LATEST_VERSION


def _seed(conn: sqlite3.Connection, version: int) -> None:
    """Rows a camguard at ``version`` could have written (plain SQL of that version)."""
    if version >= 1:
        conn.execute("INSERT INTO sessions (device_kind, device_id, app_name, pid, started_at,"
                     " ended_at, duration_s, decision) VALUES"
                     " ('camera', '/dev/video0', 'old', 7, 10.0, 12.0, 2.0, 'killed')")
        conn.execute("INSERT INTO meta (key, value) VALUES ('heartbeat', 11.0)")
    if version >= 2:
        conn.execute("INSERT INTO allowlist (exe, sha256, device_kind, added_at) VALUES"
                     " ('/usr/bin/old', ?, 'camera', 5.0)", ("a" * 64,))


@pytest.mark.parametrize("version", range(LATEST_VERSION))
def test_every_old_schema_migrates_to_the_newest(tmp_path: Path, version: int) -> None:
    db = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn, target=version) == version
    _seed(conn, version)
    conn.close()

    store = HistoryStore(db, FrozenClock(), hash_exes=False)
    assert store.warning is None
    assert store.db.read(schema_version) == LATEST_VERSION
    assert store.db.integrity_check() == ["ok"]
    if version >= 1:
        [old] = store.sessions()
        assert (old.name, old.pid, old.decision, old.duration) == ("old", 7, "killed", 2.0)
        assert store.last_heartbeat() == 11.0
    allow = AllowList(store.db)
    if version >= 2:
        assert [e.exe for e in allow.entries()] == ["/usr/bin/old"]
    # The migrated database works and has the same schema as a fresh one.
    sid = store.open_session(usage(1), 20.0)
    assert store.close_session(sid, 21.0)
    allow.add("/usr/bin/new", "b" * 64, DeviceKind.MICROPHONE, 22.0)
    migrated = store.db.read(schema)
    store.close()
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    migrate(fresh)
    assert migrated == schema(fresh)


def test_failed_migration_rolls_back_whole_step(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None)
    broken = (*MIGRATIONS, Migration(LATEST_VERSION + 1, "broken",
                                     ("CREATE TABLE extra (x)", "THIS IS NOT SQL")))
    with pytest.raises(sqlite3.OperationalError, match="syntax error"):
        migrate(conn, broken)
    assert schema_version(conn) == LATEST_VERSION
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'"
                        ).fetchone()[0] == 0


def test_database_from_a_newer_camguard_is_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    fill(db, 3)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    conn.close()
    before = db.read_bytes()
    store = HistoryStore(db, FrozenClock(), hash_exes=False)
    assert store.db.in_memory
    assert store.warning is not None and "newer camguard" in store.warning
    store.open_session(usage(1), 1.0)
    store.close()
    assert db.read_bytes() == before
    assert not list(tmp_path.glob("*.corrupt-*"))


# -- text codec --------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["plain", "", "a\x00b", "\udcff\udc80", "\ud800x", "é€😀",
                                  "<b>\x1b[31m\u202e"])
def test_text_codec_round_trips_any_str(text: str) -> None:
    stored = to_db(text)
    assert from_db(stored) == text
    assert isinstance(stored, bytes) == any(0xD800 <= ord(c) <= 0xDFFF for c in text)


# -- damaged files -----------------------------------------------------------------------
def _overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


DAMAGE = {
    "all garbage": lambda p: p.write_bytes(os.urandom(64 * 1024)),
    "garbage header": lambda p: _overwrite(p, 0, os.urandom(100)),
    "garbage over pages": lambda p: _overwrite(p, 8192, os.urandom(16384)),
    "zeroed page": lambda p: _overwrite(p, p.stat().st_size // 2, b"\0" * 4096),
    "truncated": lambda p: os.truncate(p, p.stat().st_size // 2 + 123),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_file_is_kept_aside_and_a_fresh_one_started(tmp_path: Path, damage: str
                                                            ) -> None:
    db = tmp_path / "history.sqlite3"
    fill(db)
    DAMAGE[damage](db)
    damaged = db.read_bytes()
    store = HistoryStore(db, FrozenClock(1_800_000_000.0), hash_exes=False)
    assert not store.db.in_memory
    [kept] = store.db.moved_aside
    assert kept.name == "history.sqlite3.corrupt-20270115T080000Z"
    assert kept.read_bytes() == damaged  # nothing lost
    assert store.warning is not None and str(kept) in store.warning
    assert "\n" not in store.warning
    assert store.sessions() == []
    sid = store.open_session(usage(1), 5.0)
    assert store.close_session(sid, 6.0)
    assert store.db.integrity_check() == ["ok"]
    assert mode(db) == 0o600
    store.close()
    # Reopening the fresh file is clean: no second warning, the new session is there.
    again = HistoryStore(db, FrozenClock(), hash_exes=False)
    assert again.warning is None and len(again.sessions()) == 1
    again.close()


def test_two_damaged_files_in_one_second_do_not_overwrite_each_other(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    kept = []
    for n in range(2):
        db.write_bytes(b"garbage %d" % n * 1000)
        store = HistoryStore(db, FrozenClock(), hash_exes=False)
        kept += store.db.moved_aside
        store.close()
    assert len(set(kept)) == 2
    assert sorted(k.read_bytes()[:9] for k in kept) == [b"garbage 0", b"garbage 1"]


def test_damage_found_while_running_moves_the_file_aside(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    store = HistoryStore(db, FrozenClock(), hash_exes=False)
    for i in range(300):
        store.close_session(store.open_session(usage(i), float(i)), i + 1.0)
    store.db.read(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    store.db.read(lambda c: c.execute("PRAGMA shrink_memory"))  # make it read the file again
    _overwrite(db, 4096, os.urandom(db.stat().st_size - 8192))
    assert store.sessions() == []  # no exception: a fresh database answers
    assert store.db.generation == 1 and len(store.db.moved_aside) == 1
    assert store.warning is not None and "damaged" in store.warning
    sid = store.open_session(usage(1), 1.0)
    assert [s.id for s in store.sessions()] == [sid]
    store.close()


def _commit_to_wal(db: Path, n: int) -> None:
    """Commit ``n`` sessions and leave them only in the WAL (the process dies, no checkpoint)."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from camguard.core.clock import FrozenClock
        from tests.unit.test_store_db import usage
        from camguard.store.history import HistoryStore
        s = HistoryStore(Path({str(db)!r}), FrozenClock(), hash_exes=False)
        s.db.read(lambda c: c.execute("PRAGMA wal_autocheckpoint = 0"))
        for i in range({n}):
            s.close_session(s.open_session(usage(i), float(i)), i + 1.0)
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)


def test_torn_last_wal_frame_keeps_every_earlier_commit(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    _commit_to_wal(db, 50)
    wal = Path(f"{db}-wal")
    size = wal.stat().st_size
    assert size > 32 + 4096
    # A torn write: the last frame is half written.
    _overwrite(wal, size - 2000, os.urandom(2000))
    store = HistoryStore(db, FrozenClock(), hash_exes=False)
    assert store.warning is None
    assert store.db.integrity_check() == ["ok"]
    got = store.sessions()
    # Only the last transaction may be lost; everything before it is there.
    assert 48 <= len(got) <= 50
    assert all(s.end is not None for s in got[1:])
    store.close()


def test_garbage_wal_header_is_copied_aside_before_sqlite_drops_it(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    fill(db, 5)  # these are checkpointed into the database file
    _commit_to_wal(db, 3)
    wal = Path(f"{db}-wal")
    assert _wal_header_ok(wal.read_bytes()[:32])
    _overwrite(wal, 0, os.urandom(32))
    damaged = wal.read_bytes()
    store = HistoryStore(db, FrozenClock(), hash_exes=False)
    assert store.warning is not None and "write-ahead log" in store.warning
    [kept] = store.db.moved_aside
    assert kept.read_bytes() == damaged and mode(kept) == 0o600
    assert store.db.integrity_check() == ["ok"]
    assert len(store.sessions()) >= 5
    store.close()


def test_in_memory_database_works(tmp_path: Path) -> None:
    db = Database(None, FrozenClock())
    assert db.in_memory and db.warning is None
    assert db.read(schema_version) == LATEST_VERSION
    db.close()
