"""Writes the ConsentStore .reg fixtures in this folder, in the format `reg export` writes
(UTF-16 LE with BOM, CRLF, "Windows Registry Editor Version 5.00", parent keys before their
subkeys in sorted order, a blank line after each key, long hex data wrapped at 80 columns
with a trailing backslash and two spaces of indent). CONSTRUCTED to the documented format,
not captured on a real machine. Run from the repository: python tests/data/windows/make_fixtures.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

HERE = Path(__file__).resolve().parent
CS = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\CapabilityAccessManager\\ConsentStore"
EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)


def ft(text: str, ticks: int = 0) -> int:
    """FILETIME of an ISO UTC time, plus sub-microsecond ticks."""
    at = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return (at - EPOCH) // dt.timedelta(microseconds=1) * 10 + ticks


def hexdata(prefix: str, raw: bytes) -> str:
    """`"name"=hex(b):..` wrapped as regedit does: at most 80 columns, ',\\' then '  '."""
    line = prefix
    lines = []
    pairs = [f"{b:02x}" for b in raw]
    for i, pair in enumerate(pairs):
        piece = pair + ("," if i < len(pairs) - 1 else "")
        if len(line) + len(piece) > 79 and i < len(pairs) - 1 and line.strip():
            lines.append(line + "\\")
            line = "  "
        line += piece
    lines.append(line)
    return "\r\n".join(lines)


def qword(name: str, value: int) -> str:
    return hexdata(f'"{name}"=hex(b):', value.to_bytes(8, "little"))


def times(start: int, stop: int) -> list[str]:
    return [qword("LastUsedTimeStart", start), qword("LastUsedTimeStop", stop)]


def sz(name: str, value: str) -> str:
    return f'"{name}"="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def export(keys: list[tuple[str, list[str]]]) -> bytes:
    out = ["Windows Registry Editor Version 5.00", ""]
    for path, values in keys:
        out.append(f"[{path}]")
        out.extend(values)
        out.append("")
    return b"\xff\xfe" + ("\r\n".join(out) + "\r\n").encode("utf-16-le")


def hkcu() -> bytes:
    r = f"HKEY_CURRENT_USER\\{CS}"
    zoom = "C:#Program Files#Zoom#bin#Zoom.exe"
    tel = "C:#Users#Zoë Müller#AppData#Local#Téléphone#Téléphone.exe"
    teams = "C:#Program Files (x86)#Microsoft#Teams#current#Teams.exe"
    return export([
        (r, []),
        (f"{r}\\contacts", [sz("Value", "Allow")]),  # not a device: ignored
        (f"{r}\\location", [sz("Value", "Allow")]),
        (f"{r}\\location\\Microsoft.WindowsMaps_8wekyb3d8bbwe",
         [sz("Value", "Allow"), *times(ft("2026-11-28T17:02:11", 5), ft("2026-11-28T17:09:40"))]),
        (f"{r}\\location\\NonPackaged", [sz("Value", "Allow")]),
        (f"{r}\\microphone", [sz("Value", "Allow")]),
        (f"{r}\\microphone\\Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe",
         [sz("Value", "Deny"), *times(ft("2026-10-02T08:00:00"), ft("2026-10-02T08:30:00"))]),
        (f"{r}\\microphone\\NonPackaged", [sz("Value", "Allow")]),
        (f"{r}\\microphone\\NonPackaged\\{zoom}",
         times(ft("2026-12-01T09:15:02.123456", 7), 0)),
        (f"{r}\\microphone\\NonPackaged\\{tel}",
         times(ft("2026-11-30T21:00:00"), ft("2026-11-30T21:42:17.5"))),
        (f"{r}\\webcam", [sz("Value", "Allow")]),
        (f"{r}\\webcam\\Microsoft.WindowsCamera_8wekyb3d8bbwe",
         [sz("Value", "Allow"), *times(ft("2026-11-29T12:00:00"), ft("2026-11-29T12:01:30"))]),
        (f"{r}\\webcam\\NonPackaged", [sz("Value", "Allow")]),
        (f"{r}\\webcam\\NonPackaged\\{teams}",  # left "in use" by a crash two years ago
         times(ft("2024-03-14T10:20:30"), 0)),
        (f"{r}\\webcam\\NonPackaged\\{zoom}", times(ft("2026-12-01T09:15:01"), 0)),
        (f"{r}\\webcam\\NonPackaged\\{tel}",
         times(ft("2026-11-30T21:00:01"), ft("2026-11-30T21:42:16"))),
    ])


def hklm_dword_pairs() -> bytes:
    """HKLM, as an older build writes times: a REG_BINARY FILETIME (two DWORDs) and
    separate Low/High DWORD values; the whole webcam switched off device-wide."""
    r = f"HKEY_LOCAL_MACHINE\\{CS}"
    cam = ft("2026-11-20T06:30:00")
    return export([
        (f"{r}\\microphone", [sz("Value", "Allow")]),
        (f"{r}\\microphone\\NonPackaged", [sz("Value", "Deny")]),
        (f"{r}\\microphone\\NonPackaged\\C:#Windows#System32#svchost.exe", [
            f'"LastUsedTimeStartLow"=dword:{ft("2026-11-21T07:00:00") & 0xFFFFFFFF:08x}',
            f'"LastUsedTimeStartHigh"=dword:{ft("2026-11-21T07:00:00") >> 32:08x}',
            f'"LastUsedTimeStopLow"=dword:{ft("2026-11-21T07:05:00") & 0xFFFFFFFF:08x}',
            f'"LastUsedTimeStopHigh"=dword:{ft("2026-11-21T07:05:00") >> 32:08x}']),
        (f"{r}\\webcam", [sz("Value", "Deny")]),
        (f"{r}\\webcam\\NonPackaged", [sz("Value", "Allow")]),
        (f"{r}\\webcam\\NonPackaged\\D:#Tools#OBS Studio#bin#64bit#obs64.exe", [
            hexdata('"LastUsedTimeStart"=hex:', cam.to_bytes(8, "little")),
            hexdata('"LastUsedTimeStop"=hex:', (cam + 6_000_000_000).to_bytes(8, "little")),
            # Long binary data wraps like regedit's (not a ConsentStore value, ignored).
            hexdata('"Opaque"=hex:', bytes(range(60)))]),
    ])


def hku() -> bytes:
    r = f"HKEY_USERS\\S-1-5-21-3623811015-3361044348-30300820-1013\\{CS}"
    return export([
        (f"{r}\\microphone", [sz("Value", "Allow")]),
        (f"{r}\\microphone\\NonPackaged", [sz("Value", "Allow")]),
        (f"{r}\\microphone\\NonPackaged\\C:#Users#kid#AppData#Local#Discord#app-1.0.9171#Discord.exe",
         times(ft("2026-12-01T22:10:00"), 0)),
    ])


def hostile_names() -> bytes:
    """Parseable, but the exe paths carry a terminal escape and a right-to-left override."""
    r = f"HKEY_CURRENT_USER\\{CS}\\webcam\\NonPackaged"
    return export([
        (f"{r}\\C:#Users#x#\x1b[2J\x1b[31mevil.exe", times(ft("2026-12-01T01:00:00"), 0)),
        (f"{r}\\C:#Users#x#photo\u202egnp.exe", times(ft("2026-12-01T01:00:00"), 0)),
    ])


def main() -> None:
    files = {"consent_hkcu.reg": hkcu(), "consent_hklm_dword_pairs.reg": hklm_dword_pairs(),
             "consent_hku.reg": hku(), "consent_hostile_names.reg": hostile_names()}
    full = files["consent_hkcu.reg"]
    # Cut inside the Zoom microphone entry's LastUsedTimeStop line (an even byte count).
    cut = full.index("LastUsedTimeStop".encode("utf-16-le"), full.index("Zoom".encode("utf-16-le")))
    files["consent_truncated.reg"] = full[:cut + 40]
    for name, data in files.items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
