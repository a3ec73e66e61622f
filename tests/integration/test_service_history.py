"""The history as the service serves it, on a real SQLite file: an ordinary account's
sessions are found in SQL through an index (never by reading everyone's rows), and the
monitor's write of a new session never waits for a history read in progress."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from camguard.core.clock import FrozenClock
from camguard.core.models import Device, DeviceKind, EventType, ProcessRef, Usage, UsageEvent
from camguard.store.history import HistorySink, HistoryStore
from camguard.store.history_sql import sessions_query
from camguard.store.tamper import ServiceHistory
from tests import realenv

CAM = Device(DeviceKind.CAMERA, "/dev/video0")


def usage(pid: int, user: str) -> Usage:
    return Usage(CAM, ProcessRef(pid, float(pid), "app", "/usr/bin/app", user=user))


def fill(store: HistoryStore, clock: FrozenClock) -> None:
    rows = [(pid, "bob") for pid in range(1, 3001)]
    rows[::600] = [(pid, "alice") for pid, _u in rows[::600]]  # 5 of hers among bob's
    for pid, user in rows:
        clock.advance(1)
        store.record_event(UsageEvent(EventType.STARTED, usage(pid, user), clock.now()))
        store.record_event(UsageEvent(EventType.STOPPED, usage(pid, user), clock.now() + 0.5))


def test_an_accounts_history_is_filtered_in_sql_through_an_index(tmp_path: Path) -> None:
    clock = FrozenClock(1_800_000_000.0)
    store = HistoryStore(tmp_path / "history.sqlite3", clock, hash_exes=False)
    fill(store, clock)
    entries = ServiceHistory(store).entries({}, frozenset({"alice", "1001"}), 3)
    assert [e["pid"] for e in entries if "pid" in e] == [2401, 1801, 1201]
    assert {e["user"] for e in entries if "pid" in e} == {"alice"}

    conn = sqlite3.connect(tmp_path / "history.sqlite3")
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(sessions)")}
    assert "sessions_by_user" in indexes
    sql, params = sessions_query(users={"alice", "1001"}, limit=3, since=0.0)
    plan = " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX sessions_by_user" in plan and "SCAN sessions" not in plan, plan
    conn.close()
    store.close()


def test_the_monitors_write_never_waits_for_a_history_read(tmp_path: Path) -> None:
    clock = FrozenClock(1_800_000_000.0)
    store = HistoryStore(tmp_path / "history.sqlite3", clock, hash_exes=False)
    store.record_event(UsageEvent(EventType.STARTED, usage(7, "alice"), clock.now()))
    reading, release = threading.Event(), threading.Event()

    def long_read(conn: sqlite3.Connection) -> int:
        # A history query that is still running: its statement holds a read open.
        conn.create_function("hold", 0, lambda: bool(reading.set() or release.wait(60)))
        return len(conn.execute("SELECT hold() FROM sessions").fetchall())

    reads = getattr(store, "reads", store.db)  # where history queries run
    reader = threading.Thread(target=reads.read, args=(long_read,))
    reader.start()
    try:
        assert reading.wait(30)
        sink = HistorySink(store)
        writer = threading.Thread(target=sink, args=(
            UsageEvent(EventType.STARTED, usage(8, "bob"), clock.now()),))
        writer.start()
        # The write finishes while the read is still held open.
        realenv.wait_until(lambda: not writer.is_alive(), 20, "the monitor's write")
        assert not release.is_set()
    finally:
        release.set()
        reader.join(30)
    assert {r.pid for r in store.sessions()} == {7, 8}
    store.close()
