"""``camguard forensics``: decode OS artifacts that record camera and microphone use, on any
OS (no Qt, no OS modules): ``windows-consent``, ``reg export`` files of the Windows
ConsentStore, a known forensic artifact for incident responders; ``macos-tcc`` and
``macos-log`` (cli/forensics_macos.py), a Mac's permission databases and unified log.

A file that is not a complete export (truncated, hostile, not a .reg) is reported on one
line with its name and the line at fault, and contributes nothing; the other files are still
shown, and the exit code is 1. A file that may have been cut exactly at a line end (no final
blank line) is shown with a warning (exit code 0): that cut cannot be told apart for sure.
"""

from __future__ import annotations

import argparse
import io
import os
import stat
import sys
from pathlib import Path
from typing import Any

from camguard.cli import forensics_macos
from camguard.cli.common import EXIT_DONE, EXIT_FAILED
from camguard.core.text import json_text, literal

MAX_FILE = 64 * 1024 * 1024  # the decoder's own limit; refuse before reading more


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("forensics", help="decode OS records of camera and microphone use "
                       "(any OS)")
    fsub = p.add_subparsers(dest="artifact", metavar="ARTIFACT", required=True)
    w = fsub.add_parser(
        "windows-consent", parents=[common],
        help="`reg export` files of the Windows ConsentStore: each app's last camera, "
        "microphone and location use, and whether Windows denies it")
    w.add_argument("files", nargs="+", type=Path, metavar="FILE.reg",
                   help="a `reg export` of ...\\CapabilityAccessManager\\ConsentStore "
                   "(HKCU, HKLM or HKU\\<SID>)")
    w.add_argument("--json", action="store_true",
                   help='{"entries": [...], "errors": [...], "warnings": [...]}, times in RFC '
                   "3339 UTC, "
                   "text exactly as stored (the table doubles backslashes so that control "
                   "characters in hostile names show as \\xNN)")
    w.set_defaults(func=cmd_windows_consent)
    forensics_macos.register(fsub, common)


def read_bounded(path: Path) -> bytes:
    """A regular file's bytes, at most MAX_FILE + 1 of them (never blocks on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError("not a regular file")
        return f.read(MAX_FILE + 1)


def cmd_windows_consent(args: argparse.Namespace) -> int:
    from camguard.platform import windows_consent_entries  # here: it loads psutil (issue 16)

    # An exe path may hold characters the console's code page cannot encode (a legacy
    # Windows code page, or output redirected to a file): show them as \\xNN, never crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    entries: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    for path in args.files:
        doubts: list[str] = []
        try:
            found = windows_consent_entries(read_bounded(path), doubts)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            errors.append({"file": str(path), "error": why})
            continue
        entries.extend(e.to_json() | {"file": str(path)} for e in found)
        warnings.extend({"file": str(path), "warning": d} for d in doubts)
    if args.json:
        print(json_text({"entries": entries, "errors": errors, "warnings": warnings},
                        indent=1))
    elif entries or not errors:
        _print_table(entries)
    for doubt in warnings:
        print(f"camguard: warning: {literal(doubt['file'], 300)}: {doubt['warning']}",
              file=sys.stderr)
    for err in errors:
        print(f"camguard: error: {literal(err['file'], 300)}: {literal(err['error'], 300)}",
              file=sys.stderr)
    return EXIT_FAILED if errors else EXIT_DONE


def _print_table(entries: list[dict[str, Any]]) -> None:
    if not entries:
        print("no camera, microphone or location entries")
        return
    header = ("KIND", "IN USE", "DENIED", "LAST START (UTC)", "LAST STOP (UTC)", "HIVE", "APP")
    rows = [header] + [(
        e["kind"], "in use" if e["in_use"] else "-", "denied" if e["denied"] else "-",
        e["last_start"] or "never", e["last_stop"] or ("-" if e["in_use"] else "never"),
        literal(e["hive"], 80),
        literal(e["app"], 400) + ("" if e["packaged"] else " (desktop app)"))
        for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
