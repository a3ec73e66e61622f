"""``camguard history`` as a user runs it: a real subprocess over a real database file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camguard.cli.common import CliError
from camguard.cli.history import parse_when
from camguard.core.clock import FrozenClock
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.store.history import HistoryStore

ROOT = Path(__file__).resolve().parents[2]
NOW = time.time()
CAM = Device(DeviceKind.CAMERA, "/dev/video0", "Integrated Camera")
MIC = Device(DeviceKind.MICROPHONE, "pulse:alsa_input.usb", "USB Mic")
EVIL = "=cmd|' /C calc'!A0\x1b[2J<b>bold</b>\udcff\n"


def camguard(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAMGUARD_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "camguard", "history", *args], check=False,
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder with sessions two hours, thirty minutes and one minute old."""
    d = tmp_path / "data"
    store = HistoryStore(d / "history.sqlite3", FrozenClock(), hash_exes=False)
    old = store.open_session(
        Usage(CAM, ProcessRef(11, 1.0, "zoom", "/usr/bin/zoom", ("zoom",), "alice")),
        NOW - 7200)
    store.record_decision(old, "allowed-once", "user")
    store.close_session(old, NOW - 7000)
    mid = store.open_session(
        Usage(MIC, ProcessRef(22, 2.0, "-2+3", "/usr/bin/rec", ("rec", "@SUM(A1)"), "bob")),
        NOW - 1800)
    store.record_decision(mid, "killed", "user")
    store.close_session(mid, NOW - 1790, reason="killed by camguard")
    store.open_session(Usage(CAM, ProcessRef(33, 3.0, EVIL, "/tmp/" + EVIL, (EVIL,), "eve")),
                       NOW - 60)
    store.close()
    return d


def test_json_lists_sessions_newest_first_with_every_field(data: Path) -> None:
    res = camguard("--json", data=data)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [s["pid"] for s in out] == [33, 22, 11]
    evil, mid, old = out
    for s in out:
        assert {"kind", "device", "pid", "name", "exe", "user", "start", "end",
                "decision"} <= s.keys()
        assert s["start"].endswith("Z")
    assert old["kind"] == "camera" and old["device"] == "/dev/video0"
    assert (old["name"], old["exe"], old["user"], old["decision"]) == (
        "zoom", "/usr/bin/zoom", "alice", "allowed-once")
    assert dt.datetime.fromisoformat(old["start"]).timestamp() == pytest.approx(NOW - 7200,
                                                                               abs=0.002)
    assert old["duration_s"] == pytest.approx(200, abs=0.01)
    assert mid["end_reason"] == "killed by camguard"
    # Process-controlled text: exact except the undecodable byte, which reads \xff.
    assert evil["name"] == EVIL.replace("\udcff", "\\xff") and evil["end"] is None


def test_filters_kind_app_and_relative_since(data: Path) -> None:
    def pids(*args: str) -> list[int]:
        res = camguard("--json", *args, data=data)
        assert res.returncode == 0, res.stderr
        return [s["pid"] for s in json.loads(res.stdout)]

    assert pids("--kind", "microphone") == [22]
    assert pids("--since", "1h") == [33, 22]
    assert pids("--since", "45m", "--kind", "camera") == [33]
    assert pids("--until", "1h") == [11]
    assert pids("--app", "zoom") == [11]
    assert pids("--app", "/usr/bin/rec") == [22]
    assert pids("--since", "7d", "--limit", "1") == [33]
    since = dt.datetime.fromtimestamp(NOW - 3600, tz=dt.UTC).isoformat()
    assert pids("--since", since) == [33, 22]


def test_csv_has_a_header_and_defuses_formulas(data: Path) -> None:
    res = camguard("--csv", data=data)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["pid"] for r in rows] == ["33", "22", "11"]
    evil, mid, old = rows
    assert old["name"] == "zoom" and old["decision"] == "allowed-once" and old["end"]
    assert mid["name"] == "'-2+3"  # a leading - + = @ would run as a formula
    assert json.loads(mid["cmdline"]) == ["rec", "@SUM(A1)"]  # inside JSON, not at the start
    assert evil["name"] == "'" + EVIL.replace("\udcff", "\\xff")  # the rest kept exactly
    assert evil["exe"] == "/tmp/" + EVIL.replace("\udcff", "\\xff")  # not at the start
    assert evil["end"] == ""


def test_human_table_shows_process_text_literally(data: Path) -> None:
    res = camguard(data=data)
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout
    assert "=cmd|' /C calc'!A0\\x1b[2J<b>bold</b>\\xff\\n" in res.stdout
    lines = res.stdout.splitlines()
    assert lines[0].startswith("START")
    assert "running" in lines[1] and "(pid 33)" in lines[1]
    assert any("killed" in line and "(pid 22)" in line for line in lines)


def test_bad_since_is_a_clear_error_with_exit_2(data: Path) -> None:
    res = camguard("--since", "last tuesday-ish", data=data)
    assert res.returncode == 2
    assert "--since: cannot understand 'last tuesday-ish'" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_database_is_empty_and_not_created(tmp_path: Path) -> None:
    data = tmp_path / "nothing"
    res = camguard("--json", data=data)
    assert res.returncode == 0 and json.loads(res.stdout) == []
    res = camguard("--csv", data=data)
    assert res.stdout.splitlines()[0].startswith("start,end,duration_s,kind,device")
    res = camguard(data=data)
    assert res.returncode == 0 and "no history yet" in res.stderr
    assert not data.exists()


@pytest.mark.parametrize(("content", "why"), [
    (b"my notes\nbuy milk\n" * 100, "not a camguard history database (file is not a database)"),
    (b"", "not a camguard history database (no sessions in it)"),
])
def test_db_option_never_moves_or_rewrites_a_file_that_is_not_a_history(
        tmp_path: Path, content: bytes, why: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(content)
    before = notes.stat()
    res = camguard("--json", "--db", str(notes), data=tmp_path / "unused")
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"camguard: error: {notes}: {why}; the file was left untouched" in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert notes.read_bytes() == content and notes.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing beside it


def test_db_option_reads_a_history_without_writing_to_it(data: Path, tmp_path: Path) -> None:
    db = data / "history.sqlite3"
    db.chmod(0o400)  # read-only for its owner: a read must not need more
    before = db.read_bytes()
    res = camguard("--json", "--db", str(db), data=tmp_path / "unused")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) == 3
    assert db.read_bytes() == before
    # At most SQLite's own WAL index beside it (every reader of a WAL database shares one).
    assert {p.name for p in data.iterdir()} <= {db.name, f"{db.name}-wal", f"{db.name}-shm"}


def test_camguards_own_damaged_database_is_still_recovered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "history.sqlite3").write_bytes(b"not a database at all" * 100)
    res = camguard("--json", data=data)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
    assert "was damaged" in res.stderr and "corrupt-" in res.stderr
    assert len(list(data.glob("history.sqlite3.corrupt-*"))) == 1


def test_history_imports_no_qt_opencv_or_sounddevice(data: Path) -> None:
    probe = ("import sys\n"
             "from camguard.cli import main\n"
             "rc = main(['history', '--json'])\n"
             "heavy = [m for m in ('PySide6', 'cv2', 'sounddevice') if m in sys.modules]\n"
             "sys.stderr.write('HEAVY=' + repr(heavy))\n"
             "sys.exit(rc)\n")
    env = {**os.environ, "CAMGUARD_DATA_DIR": str(data)}
    res = subprocess.run([sys.executable, "-c", probe], check=False, cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) == 3  # it really ran
    assert "HEAVY=[]" in res.stderr


# -- --since / --until parsing ----------------------------------------------------------
T0 = 1_750_000_000.0


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", T0 - 1800), ("1h", T0 - 3600), ("7d", T0 - 7 * 86400), ("2w", T0 - 14 * 86400),
    ("90s", T0 - 90), ("1.5h", T0 - 5400), (" 10 min ago ", T0 - 600), ("now", T0),
    ("2025-06-15T14:30:00Z", dt.datetime(2025, 6, 15, 14, 30, tzinfo=dt.UTC).timestamp()),
    ("2025-06-15T14:30:00+02:00",
     dt.datetime(2025, 6, 15, 12, 30, tzinfo=dt.UTC).timestamp()),
    ("2025-06-15 14:30", dt.datetime(2025, 6, 15, 14, 30).astimezone().timestamp()),
    ("2025-06-15", dt.datetime(2025, 6, 15).astimezone().timestamp()),
])
def test_parse_when_accepts_iso_and_relative(text: str, expected: float) -> None:
    assert parse_when(text, T0) == pytest.approx(expected)


def test_parse_when_today_and_yesterday_are_local_midnights() -> None:
    today = parse_when("today", T0)
    local = dt.datetime.fromtimestamp(today)
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
    assert 0 <= T0 - today < 86400 + 3600  # a DST day may be 25 hours long
    assert today - parse_when("yesterday", T0) in (82800, 86400, 90000)


@pytest.mark.parametrize("text", ["", "yesterdayish", "5 parsecs", "-1h", "2025-13-01",
                                  "1h; rm -rf /"])
def test_parse_when_rejects_nonsense_with_exit_2(text: str) -> None:
    with pytest.raises(CliError) as err:
        parse_when(text, T0, "--until")
    assert err.value.exit_code == 2 and str(err.value).startswith("--until: cannot understand")
