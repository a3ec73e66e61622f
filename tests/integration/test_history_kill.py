"""A camguard killed with SIGKILL while writing leaves a history that reopens cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.store.history import ORPHAN_REASON, HistoryStore

ROOT = Path(__file__).resolve().parents[2]

# Writes as fast as it can: a session stays open across each loop (as a live camera would),
# others are opened, decided and closed, heartbeats go in, and the WAL checkpoints now and
# then. It reports each commit so the test can kill it in the middle of real work.
WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from camguard.core.clock import FrozenClock
    from camguard.core.models import Device, DeviceKind, EventType, ProcessRef, Usage, UsageEvent
    from camguard.store.history import HistoryStore

    store = HistoryStore(Path(sys.argv[1]), FrozenClock(), hash_exes=False)
    cam = Device(DeviceKind.CAMERA, "/dev/video0", "Cam")
    t = 1_700_000_000.0
    held = Usage(cam, ProcessRef(1, 1.0, "held", "/usr/bin/held", ("held",)))
    store.record_event(UsageEvent(EventType.STARTED, held, t))
    print("opened", flush=True)
    i = 0
    while True:
        i += 1
        t += 1.0
        u = Usage(cam, ProcessRef(i + 10, 2.0, f"app{i}", "/usr/bin/app",
                                  ("app", "x" * 3000, str(i))))
        sid = store.record_event(UsageEvent(EventType.STARTED, u, t))
        store.record_decision(sid, "allowed-once", "user")
        store.record_event(UsageEvent(EventType.STOPPED, u, t + 0.5, since=t))
        store.heartbeat(t + 0.5)
        print(i, flush=True)
""")


def run_and_kill(db: Path, commits: int) -> int:
    """Start a writer, let it commit ``commits`` loops, SIGKILL it; return the last it said."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "opened\n"
        last = 0
        while last < commits:
            line = proc.stdout.readline()
            assert line, "writer died on its own"
            last = int(line)
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of the next loop's writes
        assert proc.wait(10) == -signal.SIGKILL
        return last
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def check_clean(db: Path, at_least: int) -> HistoryStore:
    store = HistoryStore(db, FrozenClock(), hash_exes=False)
    assert store.warning is None, store.warning
    assert store.db.moved_aside == []
    assert store.db.integrity_check() == ["ok"]
    closed = [s for s in store.sessions() if s.name and s.name.startswith("app") and s.end]
    assert len(closed) >= at_least
    return store


def test_sigkill_mid_write_reopens_clean_and_closes_the_orphan(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    said = run_and_kill(db, 200)
    assert Path(f"{db}-wal").exists()  # it died with a live WAL
    store = check_clean(db, said)
    [held] = [s for s in store.sessions() if s.name == "held"]
    assert held.is_open
    beat = store.last_heartbeat()
    assert beat is not None and beat >= 1_700_000_000.0 + said
    assert store.close_orphans(at=1_800_000_000.0) >= 1
    [held] = [s for s in store.sessions() if s.name == "held"]
    assert (held.end, held.end_reason) == (beat, ORPHAN_REASON)
    # The loop the writer was killed in may have left its session open: closed too.
    assert all(not s.is_open for s in store.sessions())
    store.close()


def test_repeated_kills_on_one_file_lose_no_commit(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    total = 0
    for commits in (50, 400, 120):
        total += run_and_kill(db, commits)
        store = check_clean(db, total)
        store.close()


@pytest.mark.parametrize("cut", [1, 100, 2048, 4000])
def test_torn_wal_tail_after_sigkill_reopens_clean(tmp_path: Path, cut: int) -> None:
    db = tmp_path / "history.sqlite3"
    said = run_and_kill(db, 100)
    wal = Path(f"{db}-wal")
    size = wal.stat().st_size
    assert size > cut + 32
    # A torn write: the last ``cut`` bytes of the log never reached the disk.
    os.truncate(wal, size - cut)
    # Only the transactions in the torn frame may go; every loop before it stays.
    store = check_clean(db, said - 1)
    assert store.close_orphans(at=1_800_000_000.0) >= 1
    assert store.db.integrity_check() == ["ok"]
    store.close()
