"""`camguard forensics windows-consent` against `reg export` files of the ConsentStore
(tests/data/windows: constructed to the documented format, see its README), and against
truncated and hostile files: a clear error and exit code 1, never a traceback, nothing read
from a bad file, the good files still shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import camguard
from camguard.cli import main
from camguard.platform import windows_consent_entries
from camguard.platform.windows import regfile

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"
ROOT = Path(camguard.__file__).resolve().parents[1]
HKCU = DATA / "consent_hkcu.reg"


def run(capsys: pytest.CaptureFixture[str], *files: Path, as_json: bool = True
        ) -> tuple[int, Any, str]:
    code = main(["forensics", "windows-consent", *map(str, files), *(["--json"] * as_json)])
    out, err = capsys.readouterr()
    return code, json.loads(out) if as_json else out, err


def by_app(doc: Any, kind: str) -> dict[str, dict[str, Any]]:
    return {e["app"]: e for e in doc["entries"] if e["kind"] == kind}


def test_hkcu_export_every_kind_packaged_and_desktop(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    code, doc, err = run(capsys, HKCU)
    assert (code, err, doc["errors"]) == (0, "", [])
    cams = by_app(doc, "camera")
    zoom = "C:\\Program Files\\Zoom\\bin\\Zoom.exe"
    assert cams[zoom] == {"kind": "camera", "app": zoom, "packaged": False,
                          "last_start": "2026-12-01T09:15:01Z", "last_stop": None,
                          "in_use": True, "denied": False, "hive": "HKCU", "file": str(HKCU)}
    # Left "in use" by a crash in 2024: the store says so, and the decoder reports what the
    # store says (the live backend never takes it for live use: test_windows_sources).
    teams = cams["C:\\Program Files (x86)\\Microsoft\\Teams\\current\\Teams.exe"]
    assert teams["in_use"] and teams["last_start"] == "2024-03-14T10:20:30Z"
    tel = "C:\\Users\\Zoë Müller\\AppData\\Local\\Téléphone\\Téléphone.exe"
    assert cams[tel]["last_stop"] == "2026-11-30T21:42:16Z" and not cams[tel]["in_use"]
    assert cams["Microsoft.WindowsCamera_8wekyb3d8bbwe"]["packaged"] is True
    mics = by_app(doc, "microphone")
    assert mics[zoom]["last_start"] == "2026-12-01T09:15:02.1234567Z"  # 100 ns kept
    assert mics[tel]["last_stop"] == "2026-11-30T21:42:17.5Z"
    assert mics["Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe"]["denied"] is True
    assert [e["denied"] for a, e in mics.items() if "Recorder" not in a] == [False, False]
    loc = by_app(doc, "location")
    assert list(loc) == ["Microsoft.WindowsMaps_8wekyb3d8bbwe"]
    assert loc["Microsoft.WindowsMaps_8wekyb3d8bbwe"]["last_start"] == \
        "2026-11-28T17:02:11.0000005Z"
    assert {e["kind"] for e in doc["entries"]} == {"camera", "microphone", "location"}
    assert len(doc["entries"]) == 8  # 'contacts' and the switch keys are not apps


def test_hklm_dword_pair_and_binary_times_and_device_wide_deny(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _err = run(capsys, DATA / "consent_hklm_dword_pairs.reg")
    assert code == 0
    obs = by_app(doc, "camera")["D:\\Tools\\OBS Studio\\bin\\64bit\\obs64.exe"]
    assert (obs["last_start"], obs["last_stop"], obs["hive"]) == (
        "2026-11-20T06:30:00Z", "2026-11-20T06:40:00Z", "HKLM")
    assert obs["denied"] is True  # webcam Value=Deny for the whole machine
    svc = by_app(doc, "microphone")["C:\\Windows\\System32\\svchost.exe"]
    assert (svc["last_start"], svc["last_stop"]) == ("2026-11-21T07:00:00Z",
                                                      "2026-11-21T07:05:00Z")
    assert svc["denied"] is True  # NonPackaged Value=Deny: every desktop app


def test_hku_hive_names_the_user_and_files_combine(capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    code, doc, _err = run(capsys, DATA / "consent_hku.reg", HKCU)
    assert code == 0
    hives = {e["hive"] for e in doc["entries"]}
    assert hives == {"HKCU", "HKU\\S-1-5-21-3623811015-3361044348-30300820-1013"}


def test_truncated_file_is_an_error_and_the_good_file_is_still_shown(
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = DATA / "consent_truncated.reg"
    code, doc, err = run(capsys, bad, DATA / "consent_hku.reg")
    assert code == 1
    assert doc["errors"] == [{"file": str(bad),
                              "error": "truncated: the last line has no line end"}]
    assert {e["file"] for e in doc["entries"]} == {str(DATA / "consent_hku.reg")}
    assert err == f"camguard: error: {bad}: truncated: the last line has no line end\n"


def test_table_shows_hostile_names_literally(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, DATA / "consent_hostile_names.reg", as_json=False)
    assert code == 0
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[2J\\x1b[31mevil.exe" in out and "photo\\u202egnp.exe" in out


def _mutate(old: str, new: str) -> bytes:
    text = HKCU.read_bytes()[2:].decode("utf-16-le")
    assert old in text
    return b"\xff\xfe" + text.replace(old, new, 1).encode("utf-16-le")


ZERO8 = "00,00,00,00,00,00,00,00"
BAD_FILES = {
    "odd byte count": (lambda: HKCU.read_bytes()[:-1], "odd number of bytes"),
    "not text": (lambda: b"\xff\xfe\x00\xd8\x41\x00", "not valid UTF-16 LE"),
    "wrong header": (lambda: _mutate("Version 5.00", "Version 4.00"), "line 1: expected"),
    "nine-byte QWORD": (lambda: _mutate(ZERO8, ZERO8 + ",00"), "QWORD .* 8 bytes, not 9"),
    "one-digit hex": (lambda: _mutate(ZERO8, "0,00,00,00,00,00,00,00"), "two-digit pairs"),
    "time past year 9999": (lambda: _mutate(ZERO8, "ff," * 7 + "7f"), "is not a FILETIME"),
    "Deny shadowed by a second Value": (
        lambda: _mutate('"Value"="Deny"', '"Value"="Deny"\r\n"value"="Allow"'), "given twice"),
    "key given twice": (lambda: _mutate("\\webcam]\r\n", "\\webcam]\r\n\r\n[HKEY_CURRENT_USER\\"
                                        "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Capabil"
                                        "ityAccessManager\\ConsentStore\\WEBCAM]\r\n"),
                        "key given twice"),
    "unterminated string": (lambda: _mutate('"Value"="Deny"', '"Value"="Deny'),
                            "without its closing quote"),
    "deletion entry": (lambda: _mutate('"Value"="Deny"', '"Value"=-'), "value deletion"),
    "unknown hive": (lambda: _mutate("[HKEY_CURRENT_USER", "[HKEY_NOWHERE"), "unknown hive"),
    "continuation past the end": (
        lambda: HKCU.read_bytes()[:-8] + ",\\\r\n".encode("utf-16-le"), "continues past the end"),
    "value before any key": (lambda: _mutate("\r\n\r\n[", "\r\n\"Value\"=\"Deny\"\r\n["),
                             "before any"),
    "wrong type for a time": (
        lambda: _mutate(f'"LastUsedTimeStop"=hex(b):{ZERO8}', '"LastUsedTimeStop"="0"'),
        "neither a QWORD"),
    "dword with seven digits": (
        lambda: _mutate('"Value"="Deny"', '"Value"="Deny"\r\n"x"=dword:0000001'),
        "exactly 8 hex digits"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_a_clear_error_never_a_traceback(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, why = BAD_FILES[case]
    bad = tmp_path / "bad.reg"
    bad.write_bytes(make())
    with pytest.raises(ValueError, match=why):
        windows_consent_entries(bad.read_bytes())
    code, doc, err = run(capsys, bad)
    assert code == 1 and doc["entries"] == []
    assert err.startswith(f"camguard: error: {bad}: ") and "Traceback" not in err


def test_oversized_fifo_and_missing_files_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.reg"
    with big.open("wb") as f:
        f.truncate(regfile.MAX_BYTES + 2)
    fifo = tmp_path / "fifo.reg"
    os.mkfifo(fifo)
    code, doc, _err = run(capsys, big, fifo, tmp_path / "missing.reg")
    assert code == 1
    assert [e["error"] for e in doc["errors"]] == [
        "larger than 64 MiB: not a registry export", "not a regular file",
        "No such file or directory"]


def test_forensics_runs_where_grp_pwd_fcntl_do_not_exist() -> None:
    code = ("import sys; sys.modules.update(grp=None, pwd=None, fcntl=None); import runpy; "
            f"sys.argv = ['camguard', 'forensics', 'windows-consent', {str(HKCU)!r}, '--json']\n"
            "try:\n    runpy.run_module('camguard', run_name='__main__')\n"
            "finally:\n    heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'cv2', 'sounddevice', 'pulsectl', 'comtypes', 'winreg'))\n"
            "    assert heavy == [], heavy")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=False,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert (res.returncode, res.stderr) == (0, "")
    assert len(json.loads(res.stdout)["entries"]) == 8


def test_a_cut_at_a_line_end_is_read_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = HKCU.read_bytes()
    end_of_line = raw.rindex("Zoom.exe]\r\n".encode("utf-16-le")) + 22
    cut = tmp_path / "cut.reg"
    cut.write_bytes(raw[:end_of_line])  # ends right after a key line: a complete line
    code, doc, err = run(capsys, cut)
    assert code == 0 and doc["errors"] == []
    assert doc["warnings"] == [{"file": str(cut), "warning": regfile.CUT_SHORT}]
    assert "camguard: warning: " in err and "cut at a line end" in err
    assert len(doc["entries"]) < 8
    whole_code, whole, whole_err = run(capsys, HKCU)
    assert (whole_code, whole["warnings"], whole_err) == (0, [], "")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=len(HKCU.read_bytes())),
       flips=st.lists(st.tuples(st.integers(min_value=0, max_value=len(HKCU.read_bytes()) - 1),
                                st.integers(min_value=0, max_value=255)), max_size=4))
def test_any_cut_or_corruption_reads_whole_or_fails_cleanly(
        cut: int, flips: list[tuple[int, int]]) -> None:
    """Whatever is cut off or overwritten, the decoder returns entries or raises ValueError
    (which the command turns into one line and exit 1), never another exception."""
    raw = bytearray(HKCU.read_bytes())
    for at, byte in flips:
        raw[at] = byte
    try:
        found = windows_consent_entries(bytes(raw[:cut]))
    except ValueError:
        return
    for entry in found:
        assert entry.to_json()["kind"] in ("camera", "microphone", "location")


def test_a_console_that_cannot_show_the_names_gets_escapes_not_a_traceback() -> None:
    """A Windows console or redirected output in a legacy code page (here ASCII) cannot
    encode every exe path; the command escapes what it cannot show."""
    res = subprocess.run(
        [sys.executable, "-m", "camguard", "forensics", "windows-consent", str(HKCU)],
        capture_output=True, cwd=ROOT, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"})
    assert (res.returncode, res.stderr) == (0, b"")
    assert b"C:\\\\Users\\\\Zo\\xeb M\\xfcller" in res.stdout
