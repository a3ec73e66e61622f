"""``history --json`` read straight from the rows (store/history_json.py, issue 16) prints
byte for byte what the general path prints (LocalGuard -> SessionRecord -> session_dict ->
json_text), on a real database holding what a hostile process can put there, rows edited by
hand, gaps and policy changes, and with every filter; and hands over to the general path
for what it does not cover."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from camguard import cli
from camguard.core.clock import FrozenClock
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.core.origin import ExeOrigin, OriginKind, origin_dict
from camguard.core.serialize import rfc3339
from camguard.store import db as store_db
from camguard.store import history_json
from camguard.store.history import PROBE_REASON, PROBE_STORM_REASON, HistoryStore
from camguard.store.history_sql import KINDS
from camguard.store.migrations import LATEST_VERSION

T0 = 1_764_700_000.0  # 2025-12-02
CAM = Device(DeviceKind.CAMERA, "/dev/video0", "Integrated <b>Camera</b>")
MIC = Device(DeviceKind.MICROPHONE, "pulse:alsa_input.usb\x1b[2J", "USB \u202eMic")
SCREEN = Device(DeviceKind.SCREEN, "pipewire:42", "")
WHERE = Device(DeviceKind.LOCATION, "geoclue", "GeoClue\udcff")
EVIL = "=cmd|' /C calc'!A0\x1b[2J<b>bold</b>\udcff\n\t\x00\x7f\x85\u2028\u061c\"\\"
EVIL_UTF8 = EVIL.replace("\udcff", "")  # stored as TEXT, not as a BLOB
HUGE = "A" * 65536
# Hand edits the general path reads one way or another.
ODD: list[dict[str, object]] = [
    {"cmdline": "not json"}, {"cmdline": '[1, "a", null, {"b": [2]}]'},
    {"cmdline": '"one string"'}, {"cmdline": '["\\udc80x", "\\u202e"]'},
    {"cmdline": ' ["padded"] '}, {"cmdline": b'["blob\xed\xb2\x80"]'},
    {"cmdline": ""}, {"cmdline": "[]"}, {"parents": "[[], {}]"}, {"cmdline": "[\"a\"] x"},
    {"device_id": b"\xed\xb3\xbf-blob", "device_name": None},
    {"app_name": "", "exe": None, "user": None}, {"note": ""}, {"note": EVIL_UTF8},
    {"pid": "12"}, {"pid": 2**62}, {"create_time": 1e999}, {"create_time": 7},
    {"duration_s": 5, "ended_at": T0 + 60}, {"duration_s": 1e999, "ended_at": T0 + 61},
    {"ended_at": int(T0) + 99, "duration_s": 0.0001},
    {"exe_sha256": None, "via": None}, {"decision": 0, "decided_by": 1.5},
    {"end_reason": b"blob \xed\xb2\x80"}, {"origin": "{broken"},
    {"origin": '{"kind": "snap", "name": "x", "verified": null}'},
    {"origin": '{"kind": "nope", "name": "x"}'}, {"started_at": int(T0) + 20},
    {"app_name": EVIL_UTF8, "exe": EVIL_UTF8, "user": EVIL_UTF8, "via": EVIL_UTF8,
     "cmdline": json.dumps([EVIL_UTF8], ensure_ascii=False), "decision": EVIL_UTF8},
]


def process(pid: int, name: str, exe: str, cmdline: tuple[str, ...] = (), *,
            user: str = "alice", parents: tuple[str, ...] = ()) -> ProcessRef:
    return ProcessRef(pid, T0 - pid, name, exe, cmdline, user, parents)


def fill(path: Path) -> None:
    """Sessions as camguard writes them, then rows as only a hand (or a bug) writes them."""
    store = HistoryStore(path, FrozenClock(T0), hash_exes=False)
    at = T0
    sid = store.open_session(Usage(CAM, process(11, "zoom", "/usr/bin/zoom", ("zoom",))), at)
    store.record_decision(sid, "allowed-once", "user")
    store.close_session(sid, at + 200.25)
    sid = store.open_session(Usage(MIC, process(22, EVIL, "/tmp/" + EVIL, (EVIL, "-x", ""),
                                                user=EVIL, parents=("bash", EVIL)),
                                   note=EVIL, via="stream"), at + 1.9995)
    store.record_decision(sid, "killed", EVIL_UTF8)
    store.close_session(sid, at + 2.0004, reason="killed by camguard " + EVIL_UTF8)
    store.open_session(Usage(CAM, process(33, HUGE, "/opt/" + HUGE, (HUGE,) * 5)), at + 3)
    store.open_session(Usage(SCREEN, None, note="held by another user"), at + 4)  # still open
    store.open_session(Usage(WHERE, process(44, "", "", ()), via="\udcfe"), at + 5)
    sid = store.open_session(Usage(CAM, process(55, "probe", "/usr/bin/v4l2-ctl")), at + 6)
    store.close_session(sid, at + 6.01, PROBE_REASON)
    sid = store.open_session(Usage(MIC, process(66, "storm", "/usr/bin/x")), at + 7)
    store.close_session(sid, at + 9.5, PROBE_STORM_REASON)
    store.add_note(sid, "12 probes")
    for n in range(3):  # the same start: newest id first
        store.open_session(Usage(CAM, process(70 + n, f"same{n}", "/bin/same")), at + 8)
    origin = ExeOrigin(OriginKind.DEB, "zoom\u202e", True, "", "why \x1b")
    sid = store.open_session(Usage(CAM, process(80, "deb", "/usr/bin/deb")), at + 10)
    store.db.write(lambda c: c.execute("UPDATE sessions SET origin = ?, exe_sha256 = ? "
                                       "WHERE id = ?", (json.dumps(origin_dict(origin)),
                                                        "ab" * 32, sid)))
    store.close()
    with sqlite3.connect(path) as conn:
        for n, values in enumerate(ODD):
            cols = {"device_kind": "camera", "device_id": f"/dev/video{n}",
                    "started_at": T0 + 20 + n / 7, **values}
            conn.execute(f"INSERT INTO sessions ({', '.join(cols)}) "  # noqa: S608
                         f"VALUES ({', '.join('?' for _ in cols)})", list(cols.values()))
        audits = [("gap", T0 - 50, T0 + 1.9995, "not monitored " + EVIL_UTF8),
                  ("policy-changed", T0 + 8, None, "policy <b>changed</b>"),
                  ("gap", T0 + 3, T0 + 2, "ends before it starts"),
                  ("gap", T0 + 30, T0 + 90, b"blob \xed\xb2\x80"),
                  ("run", T0 + 31, None, "not shown")]
        conn.executemany("INSERT INTO audit (type, started_at, ended_at, message) "
                         "VALUES (?, ?, ?, ?)", audits)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.sqlite3"
    fill(path)
    return path


def printed(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    return out


def both(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         argv: list[str]) -> tuple[str, str, bool]:
    """(lean output, general output, whether the lean reader answered)."""
    answered: list[bool] = []
    real = history_json.history_text

    def spy(*args: object, **kw: object) -> str | None:
        text = real(*args, **kw)  # type: ignore[arg-type]
        answered.append(text is not None)
        return text

    with monkeypatch.context() as m:
        m.setattr(history_json, "history_text", spy)
        lean = printed(capsys, argv)
    with monkeypatch.context() as m:
        m.setattr(history_json, "history_text", lambda *a, **k: None)
        general = printed(capsys, argv)
    assert answered, "the lean reader was not asked"
    return lean, general, answered[0]


FILTERS = [[], ["--kind", "camera"], ["--kind", "location"], ["--app", "ZOOM"],
           ["--app", "/usr/bin/zoom"], ["--app", "same"], ["--device", "/dev/video0"],
           ["--device", "USB \u202eMic"], ["--search", "<b>"], ["--search", "%_\\"],
           ["--limit", "0"], ["--limit", "1"], ["--limit", "4"], ["--limit", "1000"],
           ["--since", "2025-12-02T18:26:50Z"], ["--until", "2025-12-02T18:26:43Z"],
           ["--since", "2025-12-02T18:26:00Z", "--until", "2025-12-02T18:27:00Z",
            "--limit", "3"], ["--since", "1d"]]


@pytest.mark.parametrize("extra", FILTERS, ids=lambda a: " ".join(a) or "all")
def test_the_lean_text_is_the_general_text(database: Path, extra: list[str],
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lean, general, answered = both(capsys, monkeypatch,
                                   ["history", "--json", "--db", str(database), *extra])
    assert lean == general
    assert answered  # every filter is the lean reader's


def test_the_document_holds_every_hostile_row(database: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    text = printed(capsys, ["history", "--json", "--db", str(database)])
    entries = json.loads(text)
    assert len(entries) == 11 + len(ODD) + 4  # camguard's sessions, hand edits, audit rows
    assert [e["kind"] for e in entries].count("gap") == 3
    by_pid = {e.get("pid"): e for e in entries if e.get("pid") is not None}
    evil = by_pid[22]
    assert evil["name"] == EVIL.replace("\udcff", "\\xff")  # json_safe: the byte, visibly
    assert evil["cmdline"][0] == evil["name"] and evil["note"] == evil["name"]
    huge = by_pid[33]
    assert len(huge["name"]) == 65536 and huge["cmdline"][:4] == [HUGE] * 4
    assert "cut 65536 characters" in huge["cmdline"][4]
    [screen] = [e for e in entries if e.get("device") == "pipewire:42"]
    assert screen["end"] is None and screen["pid"] is None  # still open, no process seen
    assert "\\u202e" in text and "\\u2028" in text and "\\u0085" in text and "\x1b" not in text
    assert by_pid[80]["origin"]["name"] == "zoom\u202e"
    same = [e["id"] for e in entries if str(e.get("name")).startswith("same")]
    assert len(same) == 3 and same == sorted(same, reverse=True)  # one start: newest id first


@pytest.mark.parametrize("edit", [
    "UPDATE sessions SET device_kind = 'scanner' WHERE id = 1",  # skipped with a warning
    "UPDATE sessions SET started_at = 'yesterday' WHERE id = 1",  # float() refuses it
    "UPDATE sessions SET ended_at = 1e300 WHERE id = 1",  # past the year 9999: refused
    "UPDATE sessions SET exe_sha256 = x'00' WHERE id = 1",  # bytes: json.dumps refuses
    "UPDATE sessions SET cmdline = '" + "[" * 100_000 + "' WHERE id = 1",  # too deep
    "PRAGMA user_version = 4",  # an older schema: migrated in a copy
])
def test_what_the_lean_reader_leaves_to_the_general_path(
        tmp_path: Path, edit: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "history.sqlite3"
    fill(path)
    with sqlite3.connect(path) as conn:
        conn.execute(edit)
    assert history_json.history_text(path, {}, None) is None
    argv = ["history", "--json", "--db", str(path)]
    try:
        expected: str | type[BaseException] = printed(capsys, argv)
    except Exception as exc:  # the general path's own failure, kept
        expected = type(exc)
    with monkeypatch.context() as m:
        m.setattr(history_json, "history_text", lambda *a, **k: None)
        try:
            general: str | type[BaseException] = printed(capsys, argv)
        except Exception as exc:
            general = type(exc)
    assert expected == general


def test_the_general_path_still_logs_as_every_command_does(tmp_path: Path) -> None:
    """``history`` sets logging up itself (after the lean reader declined), so a row the
    store skips is still said on stderr in camguard's format, once."""
    path = tmp_path / "history.sqlite3"
    fill(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE sessions SET device_kind = 'scanner' WHERE id = 1")
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-m", "camguard", "history", "--json", "--db",
                          str(path)], capture_output=True, text=True, timeout=60, check=False,
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert res.returncode == 0, res.stderr
    assert res.stderr == ("camguard: WARNING: camguard.store.history: skipping history row 1 "
                          "with unknown device kind 'scanner'\n")
    assert 1 not in [e["id"] for e in json.loads(res.stdout) if "pid" in e]


def test_a_file_that_is_not_a_sound_database_is_the_general_paths(tmp_path: Path) -> None:
    assert history_json.history_text(tmp_path / "missing.sqlite3", {}, None) is None
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    assert history_json.history_text(junk, {}, None) is None
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert history_json.history_text(other, {}, None) is None
    empty = tmp_path / "empty.sqlite3"
    HistoryStore(empty, FrozenClock(T0), hash_exes=False).close()
    assert history_json.history_text(empty, {}, None) == "[]"


def test_times_are_written_as_core_serialize_writes_them() -> None:
    rng = random.Random(16)  # noqa: S311 - repeatable test values
    values: list[float | int] = [0.0, -0.0, 0.0005, 0.0004999, 0.9995, 0.9999995, 0.99999949,
                                 1.9999995, T0 + 0.9995, T0 + 0.0005, 86399.9999995,
                                 253402300799.0, 253402300799.9994, 1e-300, 5e-7, 1.5e-6,
                                 2.5e-6, 0, 1, int(T0), 253402300799]
    values += [rng.uniform(0, 4e9) for _ in range(20_000)]
    values += [rng.randrange(0, 4 * 10**9) + rng.randrange(0, 10**6) / 1e6 +
               rng.choice([0.0, 5e-7, -5e-7, 4.9e-7, 5.1e-10]) for _ in range(20_000)]
    values += [rng.uniform(0, 253402300799.99) for _ in range(5_000)]
    for value in values:
        assert history_json.rfc3339(value) == rfc3339(value), value
    for value in (-1.0, -0.5, -1, 253402300800, 253402300799.9999995, float("nan"),
                  float("inf"), "1.5", None):
        with pytest.raises(history_json.Unsupported):
            history_json.rfc3339(value)


def test_the_constants_it_copies_are_the_stores() -> None:
    assert history_json.SCHEMA_VERSION == LATEST_VERSION
    assert history_json.BUSY_TIMEOUT_S == store_db.BUSY_TIMEOUT_S
    assert tuple(k.value for k in DeviceKind) == KINDS


def test_as_a_whole_process_it_prints_everything_and_ends_at_once(
        database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Run as the process's entry point, the lean reader's command ends with os._exit after
    flushing (cli.main, issue 16): the whole text still arrives, with the exit status; a
    reader that goes away early (`| head`) gets no traceback."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    argv = ["history", "--json", "--db", str(database)]
    expected = printed(capsys, argv)
    res = subprocess.run([sys.executable, "-m", "camguard", *argv], capture_output=True,
                         text=True, timeout=60, check=False, cwd=root, env=env)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == expected and len(expected) > 100_000
    reader = subprocess.Popen([sys.executable, "-m", "camguard", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root,
                              env=env)
    assert reader.stdout is not None and reader.stderr is not None
    assert len(reader.stdout.read(10)) == 10
    reader.stdout.close()  # the reader goes away before the end
    assert reader.wait(60) == 0
    assert b"Traceback" not in reader.stderr.read()
