"""Tamper evidence: a service killed with SIGKILL mid-session leaves a recorded gap and a
closed session after its restart; clean stops, heartbeats and policy changes are recorded."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.store.history import ORPHAN_REASON, HistoryStore
from camguard.store.tamper import GAP, POLICY_CHANGED, RunLog, audit_records
from tests import realenv
from tests.conftest import Holder
from tests.service_env import ROOT, Box, Service, box, pids_in_status

pytestmark = pytest.mark.real


@pytest.fixture
def sandbox() -> Iterator[Box]:
    with box() as b:
        yield b


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_sigkill_mid_session_leaves_a_gap_and_a_closed_session_and_a_sound_database(
        sandbox: Box, holders: list[Holder]) -> None:
    svc = Service(sandbox, heartbeat=0.1).start()
    h = Holder([sandbox.node("video0")])
    holders.append(h)
    realenv.wait_until(lambda: h.pid in pids_in_status(svc.client.status()), 20, "the use")
    db = sandbox.data / "history.sqlite3"
    realenv.wait_until(lambda: rows(db, "SELECT last_beat > started_at FROM runs")[-1][0] == 1,
                       20, "a heartbeat after the start")
    svc.kill()
    h.close()  # the session ends while nothing watches
    svc = Service(sandbox, heartbeat=0.1).start()

    entries = svc.client.history()["entries"]
    [gap] = [e for e in entries if e["kind"] == GAP]
    [session] = [e for e in entries if e.get("pid") == h.pid]  # once: nothing duplicated
    assert session["end_reason"] == ORPHAN_REASON
    assert session["start"] <= session["end"] <= gap["end"]
    assert gap["start"] <= gap["end"] and "not monitored from" in gap["message"]
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert rows(db, "SELECT stopped_at IS NULL FROM runs ORDER BY id") == [(1,), (1,)]
    events = [json.loads(line) for line in (sandbox.state / "events.jsonl").read_text()
              .splitlines()]
    assert [e["type"] for e in events].count("monitoring.gap") == 1
    # The human history shows the gap too.
    env = {**sandbox.env(), "CAMGUARD_SOCKET": str(sandbox.root / "none.sock")}
    out = subprocess.run([sys.executable, "-m", "camguard", "history", "--socket",
                          str(sandbox.sock)], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=60, check=True).stdout
    assert "GAP" in out and "not monitored from" in out and ORPHAN_REASON in out
    assert svc.stop() == 0


def test_a_clean_stop_is_recorded_and_leaves_no_gap(sandbox: Box) -> None:
    svc = Service(sandbox).start()
    assert svc.stop() == 0
    svc = Service(sandbox).start()
    assert not [e for e in svc.client.history()["entries"] if e["kind"] == GAP]
    assert svc.stop() == 0
    db = sandbox.data / "history.sqlite3"
    assert rows(db, "SELECT stop_reason FROM runs ORDER BY id") == [
        ("stopped by SIGTERM",), ("stopped by SIGTERM",)]
    types = [json.loads(x)["type"] for x in (sandbox.state / "events.jsonl").read_text()
             .splitlines()]
    assert types == ["camguard.started", "camguard.stopped"] * 2


def test_a_policy_file_changed_between_runs_is_recorded(sandbox: Box) -> None:
    sandbox.policy.write_text('[settings]\nmode = "ask"\n')
    svc = Service(sandbox).start()
    assert svc.stop() == 0
    sandbox.policy.write_text('[settings]\nmode = "notify-only"\n')
    svc = Service(sandbox).start()

    def changes() -> list[dict[str, object]]:
        return [e for e in svc.client.history()["entries"] if e["kind"] == POLICY_CHANGED]

    # The service answers as soon as its socket is up; the run (and the change it noticed)
    # is recorded just after, so wait for it rather than race it.
    realenv.wait_until(lambda: len(changes()) == 1, 20, "the policy change to be recorded")
    [change] = changes()
    assert str(sandbox.policy) in change["message"] and "changed since the last run" in \
        change["message"]
    assert svc.stop() == 0


# -- the run log itself, with a frozen clock over a real database file ---------------------------
CAM = Device(DeviceKind.CAMERA, "/dev/video0")


def test_run_log_records_a_gap_from_the_last_sign_of_life(tmp_path: Path) -> None:
    clock = FrozenClock(1_000_000.0)
    store = HistoryStore(tmp_path / "h.sqlite3", clock, hash_exes=False)
    log = RunLog(store.db, clock)
    assert log.begin(os.getpid()).gap is None  # the first run ever
    sid = store.open_session(Usage(CAM, ProcessRef(5, 1.0, "app")), clock.now())
    clock.advance(30)
    log.beat()
    clock.advance(10)
    store.heartbeat()  # the history's own heartbeat counts as a sign of life too
    store.close()
    clock.advance(500)  # killed: no end(); nothing for 500 s

    store = HistoryStore(tmp_path / "h.sqlite3", clock, hash_exes=False)
    report = RunLog(store.db, clock).begin(os.getpid())
    assert report.gap is not None
    assert (report.gap.start, report.gap.end) == (1_000_040.0, 1_000_540.0)
    assert store.close_orphans(clock.now()) == 1
    rec = store.get(sid)
    assert rec is not None and rec.end == 1_000_040.0 and rec.end_reason == ORPHAN_REASON
    [gap] = audit_records(store.db, since=1_000_100.0)
    assert gap.to_dict()["duration_s"] == 500.0
    assert audit_records(store.db, until=1_000_039.0) == []
    store.close()


def test_run_log_end_means_no_gap_and_a_policy_change_is_seen_at_a_beat(
        tmp_path: Path) -> None:
    clock = FrozenClock()
    policy = tmp_path / "policy.toml"
    store = HistoryStore(tmp_path / "h.sqlite3", clock, hash_exes=False)
    log = RunLog(store.db, clock, policy_path=policy)
    log.begin(1)
    assert log.beat() is None
    policy.write_text("locked = []\n")
    change = log.beat()
    assert change is not None and change.type == POLICY_CHANGED and "appeared" in \
        change.message
    log.end("requested")
    report = RunLog(store.db, clock, policy_path=policy).begin(2)
    assert report.gap is None and report.policy_change is None
    policy.unlink()
    report = RunLog(store.db, clock, policy_path=policy).begin(3)
    assert report.gap is not None  # run 2 never ended
    assert report.policy_change is not None and "removed" in report.policy_change.message
    store.close()


def test_local_history_shows_gaps_in_the_table_and_the_json(tmp_path: Path) -> None:
    clock = FrozenClock(1_700_000_000.0)
    store = HistoryStore(tmp_path / "data" / "history.sqlite3", clock, hash_exes=False)
    RunLog(store.db, clock).begin(1)
    clock.advance(60)
    RunLog(store.db, clock).begin(2)
    sid = store.open_session(Usage(CAM, ProcessRef(7, 1.0, "zoom", user="ann")), clock.now())
    store.close_session(sid, clock.now() + 5)
    store.close()
    env = {**os.environ, "CAMGUARD_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT),
           "CAMGUARD_SOCKET": str(tmp_path / "none.sock")}

    def history(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "camguard", "history", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=True,
                              cwd=ROOT).stdout

    entries = json.loads(history("--json", "--since", "2023-01-01"))
    assert [e["kind"] for e in entries] == ["camera", "gap"]
    assert entries[1]["duration_s"] == 60.0
    assert "GAP" in history("--since", "2023-01-01")
    assert [e["kind"] for e in json.loads(history("--json", "--app", "zoom"))] == ["camera"]
