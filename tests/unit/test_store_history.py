"""The session history against real SQLite files: sessions, events, orphans, filters, hashes."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.models import (
    Degraded,
    Device,
    DeviceKind,
    EventType,
    HealthEvent,
    ProcessRef,
    Usage,
    UsageEvent,
)
from camguard.store.hashing import ExeHasher, sha256_file
from camguard.store.history import ORPHAN_REASON, HistorySink, HistoryStore
from camguard.store.history_record import SessionRecord

CAM = Device(DeviceKind.CAMERA, "/dev/video0", "Integrated Camera")
MIC = Device(DeviceKind.MICROPHONE, "pulse:alsa_input.usb", "USB Mic")


def proc(pid: int = 4242, name: str = "zoom", exe: str = "/usr/bin/zoom") -> ProcessRef:
    return ProcessRef(pid, 1_700_000_000.25, name, exe, ("zoom", "--meeting", "1"), "alice",
                      ("bash", "systemd"))


def use(device: Device = CAM, p: ProcessRef | None = None, note: str = "") -> Usage:
    return Usage(device, p if p is not None else proc(), note, "fd")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(tmp_path / "history.sqlite3", FrozenClock(), hash_exes=False)
    yield s
    s.close()


def reopen(store: HistoryStore) -> HistoryStore:
    """Close ``store`` and open its file again, as the next camguard run would."""
    store.close()
    return HistoryStore(store.db.path, FrozenClock(), hash_exes=False)


def reread(store: HistoryStore, session_id: int) -> SessionRecord | None:
    again = reopen(store)
    try:
        return again.get(session_id)
    finally:
        again.close()


# -- sessions ----------------------------------------------------------------------------
def test_a_session_round_trips_every_field(store: HistoryStore) -> None:
    sid = store.open_session(use(note="stream pid differs"), 100.0)
    [rec] = store.sessions()
    assert rec == SessionRecord(
        id=sid, kind=DeviceKind.CAMERA, device_id="/dev/video0",
        device_name="Integrated Camera", pid=4242, create_time=1_700_000_000.25,
        name="zoom", exe="/usr/bin/zoom", exe_sha256=None, user="alice",
        cmdline=("zoom", "--meeting", "1"), parents=("bash", "systemd"), start=100.0,
        end=None, duration=None, decision=None, decided_by=None, note="stream pid differs",
        end_reason=None, via="fd")
    assert rec.is_open and rec.process == proc() and rec.device == CAM
    assert store.record_decision(sid, "killed", "user")
    assert store.close_session(sid, 112.5, reason="killed by camguard")
    assert not store.close_session(sid, 200.0)  # already closed: nothing changes
    done = reread(store, sid)
    assert done is not None
    assert (done.end, done.duration, done.decision, done.decided_by, done.end_reason) == (
        112.5, 12.5, "killed", "user", "killed by camguard")


def test_unseen_process_is_stored_without_process_fields(store: HistoryStore) -> None:
    sid = store.open_session(Usage(CAM, None, "in use by a process camguard cannot see"), 5.0)
    rec = store.get(sid)
    assert rec is not None and rec.pid is None and rec.process is None and rec.name is None
    assert rec.cmdline == () and rec.note.startswith("in use by")


def test_end_is_never_before_start(store: HistoryStore) -> None:
    sid = store.open_session(use(), 100.0)
    store.close_session(sid, 90.0)  # the wall clock stepped back
    rec = store.get(sid)
    assert rec is not None and rec.end == 100.0 and rec.duration == 0.0


def test_record_decision_for_unknown_session_is_false(store: HistoryStore) -> None:
    assert not store.record_decision(999, "blocked", "rule:1")


def test_record_event_opens_and_closes_by_usage_key(store: HistoryStore) -> None:
    a, b = use(), use(MIC)
    sid_a = store.record_event(UsageEvent(EventType.STARTED, a, 10.0))
    sid_b = store.record_event(UsageEvent(EventType.STARTED, b, 11.0))
    assert store.record_event(UsageEvent(EventType.STARTED, a, 12.0)) == sid_a  # repeated
    assert store.session_for(a.key) == sid_a
    assert store.record_event(UsageEvent(EventType.STOPPED, a, 20.0, since=10.0)) == sid_a
    assert store.session_for(a.key) is None
    got = {r.id: r for r in store.sessions()}
    assert len(got) == 2
    assert (got[sid_a].start, got[sid_a].end) == (10.0, 20.0)
    assert got[sid_b].is_open


def test_stop_without_a_seen_start_is_stored_from_since(store: HistoryStore) -> None:
    sid = store.record_event(UsageEvent(EventType.STOPPED, use(), 50.0, since=40.0))
    rec = store.get(sid)
    assert rec is not None and (rec.start, rec.end, rec.duration) == (40.0, 50.0, 10.0)


# -- orphans, heartbeat, retention -------------------------------------------------------
def test_orphans_end_at_the_last_heartbeat(store: HistoryStore) -> None:
    before = store.open_session(use(), 100.0)
    store.heartbeat(150.0)
    after_beat = store.open_session(use(MIC), 160.0)  # also a heartbeat at 160
    store.heartbeat(170.0)
    closed = store.open_session(use(p=proc(7)), 105.0)
    store.close_session(closed, 106.0)
    store.heartbeat(180.0)
    # camguard dies here: nothing closes the open sessions.
    new = reopen(store)
    mine = new.record_event(UsageEvent(EventType.STARTED, use(p=proc(8)), 300.0))
    assert new.close_orphans(at=400.0) == 2
    recs = {r.id: r for r in new.sessions()}
    assert (recs[before].end, recs[before].duration, recs[before].end_reason) == (
        180.0, 80.0, ORPHAN_REASON)
    assert recs[after_beat].end == 180.0
    assert recs[closed].end_reason is None and recs[closed].end == 106.0
    assert recs[mine].is_open  # sessions of the running camguard are not orphans
    assert new.close_orphans(at=500.0) == 0
    new.close()


@pytest.mark.parametrize(("start", "beat", "end"), [
    (200.0, 100.0, 200.0),  # a heartbeat older than the session: it ends where it started
    (50.0, 10_000.0, 300.0),  # a heartbeat from a clock in the future: capped at "now"
    (50.0, 120.0, 120.0),
])
def test_orphan_never_ends_before_it_started_nor_after_now(
        tmp_path: Path, start: float, beat: float, end: float) -> None:
    s = HistoryStore(tmp_path / "h.sqlite3", FrozenClock(), hash_exes=False)
    sid = s.open_session(use(), start)
    s.heartbeat(beat)
    s = reopen(s)
    assert s.close_orphans(at=300.0) == 1
    rec = s.get(sid)
    assert rec is not None and (rec.end, rec.duration) == (end, end - start)
    s.close()


def test_heartbeat_uses_the_clock_by_default(tmp_path: Path) -> None:
    clock = FrozenClock(1234.0)
    s = HistoryStore(tmp_path / "h.sqlite3", clock, hash_exes=False)
    assert s.last_heartbeat() is None
    s.heartbeat()
    assert s.last_heartbeat() == 1234.0
    s.close()


def test_purge_keeps_open_and_recent_sessions(store: HistoryStore) -> None:
    old = store.open_session(use(), 10.0)
    store.close_session(old, 20.0)
    recent = store.open_session(use(), 90.0)
    store.close_session(recent, 100.0)
    running = store.open_session(use(MIC), 5.0)
    assert store.purge_older_than(50.0) == 1
    assert {r.id for r in store.sessions()} == {recent, running}


# -- filters and order -------------------------------------------------------------------
@pytest.fixture
def populated(store: HistoryStore) -> dict[str, int]:
    ids = {}
    for key, dev, p, start, end in [
        ("zoom-cam", CAM, proc(1, "zoom", "/usr/bin/zoom"), 100.0, 200.0),
        ("zoom-mic", MIC, proc(1, "zoom", "/usr/bin/zoom"), 100.0, 200.0),
        ("obs", CAM, proc(2, "OBS", "/opt/obs/bin/obs"), 300.0, 400.0),
        ("firefox", MIC, proc(3, "firefox", "/usr/lib/firefox/firefox"), 500.0, None),
        ("pct", CAM, proc(4, "50%_off", "/tmp/50%_off"), 50.0, 60.0),
    ]:
        ids[key] = store.open_session(use(dev, p), start)
        if end is not None:
            store.close_session(ids[key], end)
    store.record_decision(ids["obs"], "always-allowed", "user")
    return ids


def names(recs: list[SessionRecord]) -> list[str | None]:
    return [r.name for r in recs]


def test_sessions_are_newest_first_with_ties_by_id(store: HistoryStore,
                                                   populated: dict[str, int]) -> None:
    recs = store.sessions()
    assert [r.id for r in recs] == [populated[k] for k in
                                    ("firefox", "obs", "zoom-mic", "zoom-cam", "pct")]
    assert len(store.sessions(limit=2)) == 2


def test_since_and_until_select_overlapping_sessions(store: HistoryStore,
                                                     populated: dict[str, int]) -> None:
    assert names(store.sessions(since=350.0)) == ["firefox", "OBS"]  # OBS ran until 400
    assert names(store.sessions(since=1000.0)) == ["firefox"]  # still running
    assert names(store.sessions(until=99.0)) == ["50%_off"]
    assert names(store.sessions(since=150.0, until=310.0)) == ["OBS", "zoom", "zoom"]


def test_kind_device_app_and_search_filters(store: HistoryStore,
                                            populated: dict[str, int]) -> None:
    assert names(store.sessions(kind="microphone")) == ["firefox", "zoom"]
    assert names(store.sessions(kind=DeviceKind.CAMERA, app="zoom")) == ["zoom"]
    assert names(store.sessions(device="USB Mic")) == ["firefox", "zoom"]
    assert names(store.sessions(device="/dev/video0", since=250.0)) == ["OBS"]
    assert names(store.sessions(app="obs")) == ["OBS"]  # name, case-insensitively
    assert names(store.sessions(app="/opt/obs/bin/obs")) == ["OBS"]  # full path
    assert names(store.sessions(app="firefox")) == ["firefox"]  # file name
    assert names(store.sessions(app="bin/obs")) == []  # not a suffix match
    assert names(store.sessions(search="ALWAYS")) == ["OBS"]  # decision, any case
    assert names(store.sessions(search="50%_")) == ["50%_off"]  # % and _ are literal
    assert names(store.sessions(search="%")) == ["50%_off"]
    assert names(store.sessions(search="meeting")) == names(store.sessions())  # cmdline
    with pytest.raises(ValueError, match="speaker"):
        store.sessions(kind="speaker")


# -- hostile text ------------------------------------------------------------------------
HOSTILE = [
    "<b>bold</b><img src=x onerror=alert(1)>",
    "\x1b[31mred\x1b[0m\x07\r\n\t",
    "bad\udcff\udc80utf8",
    "lone\ud800high",
    "nul\x00inside",
    "\u202eevil\u202c",
    "😀 é € 漢字",
    "'; DROP TABLE sessions; --",
    "x" * 65536,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_round_trips_literally(store: HistoryStore, text: str) -> None:
    p = ProcessRef(66, 1.0, text, "/tmp/" + text, (text, "--x=" + text), text, (text,))
    dev = Device(DeviceKind.MICROPHONE, "pulse:" + text, text)
    sid = store.open_session(Usage(dev, p, text, "stream"), 1.0)
    store.record_decision(sid, "default:" + text, text)
    store.close_session(sid, 2.0, reason=text)
    rec = reread(store, sid)
    assert rec is not None
    assert rec.process == p and rec.process.name == p.name and rec.process.exe == p.exe
    assert rec.cmdline == p.cmdline and rec.parents == p.parents and rec.user == text
    assert (rec.device_id, rec.device_name, rec.note, rec.end_reason) == (
        dev.id, text, text, text)
    assert (rec.decision, rec.decided_by) == ("default:" + text, text)


def test_hostile_text_is_searchable(store: HistoryStore) -> None:
    for i, text in enumerate(HOSTILE):
        store.open_session(use(p=proc(i, text)), float(i))
    assert names(store.sessions(search="DROP TABLE")) == [HOSTILE[7]]
    assert names(store.sessions(search="漢字")) == [HOSTILE[6]]
    assert names(store.sessions(app="lone\ud800high")) == [HOSTILE[3]]
    assert store.db.integrity_check() == ["ok"]


def test_megabytes_of_command_line_are_capped_and_say_so(store: HistoryStore) -> None:
    args = tuple("a" * 100_000 for _ in range(30))
    p = ProcessRef(1, 1.0, "big", "/bin/big", args)
    rec = store.get(store.open_session(use(p=p), 1.0))
    assert rec is not None
    assert sum(map(len, rec.cmdline)) < 300_000
    assert rec.cmdline[:2] == args[:2]
    assert "cut" in rec.cmdline[-1]


# -- hashes ------------------------------------------------------------------------------
def test_exe_sha256_is_filled_in_off_the_hot_path(tmp_path: Path) -> None:
    exe = os.path.realpath(sys.executable)
    s = HistoryStore(tmp_path / "h.sqlite3", FrozenClock())
    sid = s.open_session(use(p=proc(exe=exe)), 1.0)
    missing = s.open_session(use(p=proc(exe=str(tmp_path / "gone"))), 2.0)
    assert s.wait_for_hashes(30)
    with open(exe, "rb") as f:
        expected = hashlib.sha256(f.read()).hexdigest()
    assert s.get(sid).exe_sha256 == expected  # type: ignore[union-attr]
    assert s.get(missing).exe_sha256 is None  # type: ignore[union-attr]
    s.close()


def test_a_caller_supplied_hasher_that_fails_leaves_null(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    def boom(p: ProcessRef) -> str | None:
        raise RuntimeError("no hashing today")

    s = HistoryStore(tmp_path / "h.sqlite3", FrozenClock(), hasher=boom)
    with caplog.at_level(logging.ERROR):
        sid = s.open_session(use(), 1.0)
        assert s.wait_for_hashes(10)
    assert s.get(sid).exe_sha256 is None  # type: ignore[union-attr]
    assert "no hashing today" in caplog.text
    s.close()


def test_hashing_never_hangs_or_raises_on_odd_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert sha256_file(str(fifo)) is None  # O_NONBLOCK: no writer needed
    assert sha256_file(str(tmp_path)) is None
    assert sha256_file(str(tmp_path / "missing")) is None
    assert sha256_file("bad\x00path") is None
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    assert sha256_file(str(big), limit=99) is None
    assert sha256_file(str(big)) == hashlib.sha256(b"x" * 100).hexdigest()


def test_a_binary_replaced_at_the_same_path_is_hashed_again(tmp_path: Path) -> None:
    exe = tmp_path / "app"
    exe.write_bytes(b"version 1")
    hasher = ExeHasher()
    first = hasher(proc(exe=str(exe)))
    assert first == hashlib.sha256(b"version 1").hexdigest()
    assert hasher(proc(exe=str(exe))) == first  # cached
    replacement = tmp_path / "app.new"
    replacement.write_bytes(b"version 2")
    os.replace(replacement, exe)  # how package managers update: a new inode
    assert hasher(proc(exe=str(exe))) == hashlib.sha256(b"version 2").hexdigest()
    with exe.open("r+b") as f:  # and an in-place rewrite of the same size
        f.write(b"VERSION 2")
    assert hasher(proc(exe=str(exe))) == hashlib.sha256(b"VERSION 2").hexdigest()


# -- threads and the sink ----------------------------------------------------------------
def test_many_threads_share_one_store(store: HistoryStore) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(50):
                sid = store.open_session(use(p=proc(t * 1000 + i)), float(i))
                store.record_decision(sid, "allowed-once", f"thread {t}")
                store.close_session(sid, i + 1.0)
                store.sessions(limit=5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    recs = store.sessions()
    assert len(recs) == 200 and all(r.end is not None and r.decision for r in recs)
    assert store.db.integrity_check() == ["ok"]


def test_sink_records_usage_events_and_ignores_health(store: HistoryStore) -> None:
    sink = HistorySink(store)
    sink(HealthEvent("pulse", Degraded("pulse", "server gone"), 1.0))
    sink(UsageEvent(EventType.STARTED, use(), 10.0))
    [rec] = store.sessions()
    assert rec.is_open
    sink(UsageEvent(EventType.STOPPED, use(), 15.0, since=10.0))
    assert store.sessions()[0].end == 15.0


def test_sink_logs_and_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = HistoryStore(tmp_path / "h.sqlite3", FrozenClock(), hash_exes=False)
    s.close()  # every statement now fails
    with caplog.at_level(logging.ERROR):
        HistorySink(s)(UsageEvent(EventType.STARTED, use(), 10.0))
    assert "could not record a started usage" in caplog.text
