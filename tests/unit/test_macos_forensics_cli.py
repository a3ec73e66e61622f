"""`camguard forensics macos-tcc` against real SQLite files made here with each macOS era's
``access`` columns (tests/unit/test_macos_tcc.py's schemas), and `forensics macos-log`
against captures assembled from the recorded ndjson lines in tests/data/macos (constructed to
the documented formats, see its README): sessions paired from the evidence, lines that must
not match, an unknown format giving no session, hostile and unreadable files."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from camguard.cli import main
from camguard.cli.forensics_macos import bounded_lines
from tests.unit.test_macos_tcc import make

DATA = Path(__file__).resolve().parents[1] / "data" / "macos"


def capture(tmp_path: Path, *names: str) -> Path:
    """A `log show --style ndjson` file: every recorded line of the named captures, in order."""
    lines = []
    for name in names:
        doc = json.loads((DATA / name).read_text(encoding="utf-8"))
        lines += [case["ndjson"] for case in doc["cases"]]
    out = tmp_path / "capture.ndjson"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["forensics", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- macos-tcc ---------------------------------------------------------------------------------
def test_tcc_json_lists_every_answer_with_rfc3339_times(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    db = make(tmp_path / "TCC.db", "14", [
        ("kTCCServiceCamera", "us.zoom.xos", 2, 1_700_000_000),
        ("kTCCServiceMicrophone", "com.evil.app", 0, 1_700_000_100),
        ("kTCCServiceScreenCapture", "/usr/local/bin/obs", 3, 1_700_000_200),
        ("kTCCServiceAddressBook", "com.apple.Mail", 2, 1_700_000_300)])
    code, out, err = run(capsys, "macos-tcc", str(db), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"errors": [], "entries": [
        {"service": "camera", "client": "us.zoom.xos", "allowed": True,
         "last_modified": "2023-11-14T22:13:20.000Z", "file": str(db)},
        {"service": "microphone", "client": "com.evil.app", "allowed": False,
         "last_modified": "2023-11-14T22:15:00.000Z", "file": str(db)},
        {"service": "screen", "client": "/usr/local/bin/obs", "allowed": None,
         "last_modified": "2023-11-14T22:16:40.000Z", "file": str(db)}]}


def test_tcc_table_old_schema_and_hostile_client(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    hostile = "com.x\x1b]0;pwned\x07\u202eppa.evil\n" + "A" * 70_000
    db = make(tmp_path / "TCC.db", "10.13", [("kTCCServiceCamera", hostile, 1, 0),
                                            ("kTCCServiceMicrophone", "com.ok", 0, 0)])
    code, out, err = run(capsys, "macos-tcc", str(db))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["SERVICE", "ANSWER", "LAST", "CHANGE", "(UTC)", "CLIENT"]
    assert len(lines) == 3  # the newline in the client does not make a row of its own
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\u202e" in out and "unknown" in lines[1]  # no last_modified
    assert lines[2].split()[:2] == ["microphone", "denied"]


def test_tcc_bad_files_are_errors_and_the_good_one_is_still_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = make(tmp_path / "good.db", "11", [("kTCCServiceCamera", "us.zoom.xos", 2, 5)])
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (t TEXT)")
    conn.commit()
    conn.close()
    missing = tmp_path / "missing.db"
    code, out, err = run(capsys, "macos-tcc", str(good), str(corrupt), str(other),
                         str(missing), "--json")
    doc = json.loads(out)
    assert code == 1
    assert [e["client"] for e in doc["entries"]] == ["us.zoom.xos"]
    assert [e["file"] for e in doc["errors"]] == [str(corrupt), str(other), str(missing)]
    assert "not a TCC database" in doc["errors"][0]["error"]
    assert "no access table" in doc["errors"][1]["error"]
    assert "no such file" in doc["errors"][2]["error"]
    assert err.count("camguard: error:") == 3 and "Traceback" not in err


def test_tcc_locked_database_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    db = make(tmp_path / "TCC.db", "14", [("kTCCServiceCamera", "a", 2, 1)])
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")  # as tccd would hold it mid-write
    try:
        code, out, err = run(capsys, "macos-tcc", str(db))
    finally:
        holder.rollback()
        holder.close()
    assert code == 1 and out == ""
    assert "locked by another program" in err


# -- macos-log ---------------------------------------------------------------------------------
def test_log_sessions_of_a_macos_14_capture(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "macos-log", str(capture(tmp_path, "log-14.json")), "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert (doc["lines"], doc["matched"], doc["unattributed_stops"]) == (11, 3, 0)
    cam, mic = doc["sessions"]
    # FaceTime's endpoint session ends at the one removal (one endpoint session was open).
    assert (cam["kind"], cam["pid"], cam["pattern"], cam["confidence"]) == (
        "camera", 901, "cmio-endpoint", "medium")
    assert cam["start_utc"] == "2024-05-01T08:00:00.100000Z"
    assert cam["stop"] is not None and cam["stop_pattern"] == "cmio-endpoint-removed"
    # CoreMedia documents no end message: the session has no stop, never a guessed one.
    assert (mic["kind"], mic["pid"], mic["stop"], mic["pattern"]) == (
        "microphone", 17873, None, "coremedia-session")


def test_log_control_pid_sessions_and_version_choice(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    path = str(capture(tmp_path, "log-13.3.json"))
    code, out, _err = run(capsys, "macos-log", path, "--macos", "13.4", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["matched"] == 4
    assert [(s["pid"], s["start_utc"], s["stop_utc"], s["stop_pattern"])
            for s in doc["sessions"]] == [
        (90429, "2023-06-01T16:00:00.000000Z", "2023-06-01T16:00:30.000000Z",
         "cmio-control-pid")]
    # Without --macos every pattern counts: the 14+ wording in this file then matches too
    # (the case "the 14+ wording is not used on 13.x"), which is why --macos exists.
    code, out, _err = run(capsys, "macos-log", path, "--json")
    assert [s["pattern"] for s in json.loads(out)["sessions"]] == ["cmio-control-pid",
                                                                   "cmio-endpoint"]


def test_log_systemstatus_dump_replaces(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "macos-log", str(capture(tmp_path, "log-12.json")),
                          "--macos", "12.6")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:2] == ["KIND", "PID"]
    assert [(r[0], r[1]) for r in rows[1:3]] == [("camera", "5512"), ("microphone", "777")]
    # Both stopped at the dump with empty lists, at 08:00:05.
    assert all("08:00:05" in " ".join(r) for r in rows[1:3])
    assert out.splitlines()[-1] == "3 lines read, 2 matched"


def test_log_unknown_format_attributes_nothing(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "macos-log", str(capture(tmp_path, "log-future.json")))
    assert code == 0
    assert out.startswith("no camera or microphone session attributed (2 lines read")


def test_log_hostile_capture_never_crashes(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    good = json.loads((DATA / "log-14.json").read_text(encoding="utf-8"))["cases"][1]["ndjson"]
    hostile = tmp_path / "hostile.ndjson"
    with hostile.open("wb") as f:
        f.write(b"\xff\xfe not utf-8\n")
        f.write(b"{" * 200_000 + b"\n")  # a line past the limit: skipped unread
        f.write(b"[" * 5000 + b"\n")  # deep nesting within the limit
        f.write(good.replace("2024-05-01 10:00:00.100000+0200",
                              "\\u202e\\u001b[2J")  # JSON escapes: the real characters
                .encode() + b"\n")
        f.write(b"\x00" * 100)  # no final newline
    code, out, err = run(capsys, "macos-log", str(hostile))
    assert (code, err) == (0, "")
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\u202e\\x1b[2J" in out and "901" in out
    assert out.splitlines()[-1] == "5 lines read, 1 matched"


def test_log_bad_inputs_are_clear_errors(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = str(capture(tmp_path, "log-14.json"))
    code, _out, err = run(capsys, "macos-log", path, "--macos", "10.15")
    assert code == 1 and "no log format before macOS 11" in err
    code, _out, err = run(capsys, "macos-log", path, "--macos", "fourteen")
    assert code == 1 and "not a macOS version: 'fourteen'" in err
    code, _out, err = run(capsys, "macos-log", str(tmp_path / "nope"))
    assert code == 1 and "No such file" in err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _out, err = run(capsys, "macos-log", str(fifo))  # never blocks on a FIFO
    assert code == 1 and "not a regular file" in err


def test_bounded_lines_skips_long_lines_without_keeping_them(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a\n" + b"x" * 100 + b"\nb\n" + b"y" * 10 + b"\nc")
    with path.open("rb") as f:
        got: list[Any] = list(bounded_lines(f, limit=20))
    assert got == [b"a\n", b"", b"b\n", b"y" * 10 + b"\n", b"c"]
