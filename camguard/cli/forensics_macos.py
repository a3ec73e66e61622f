"""``camguard forensics macos-tcc`` and ``macos-log``: a Mac's permission records (TCC.db) and
a saved unified-log capture, read on any OS.

A file that cannot be read (missing, locked, corrupt, not a TCC database) is reported on one
line with its name and contributes nothing; the other files are still shown, and the exit
code is 1.
"""

from __future__ import annotations

import argparse
import io
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from camguard.cli.common import EXIT_DONE, EXIT_FAILED
from camguard.core.serialize import rfc3339
from camguard.core.text import json_text, literal
from camguard.platform import macos_log_sessions, macos_tcc_entries

MAX_LINE = 64 * 1024  # a longer line is no log line of ours: skipped without keeping it
CHUNK = 64 * 1024


def register(fsub: Any, common: argparse.ArgumentParser) -> None:
    t = fsub.add_parser(
        "macos-tcc", parents=[common],
        help="macOS permission databases (TCC.db): which apps were granted or denied the "
        "camera, the microphone and screen recording, and when")
    t.add_argument("files", nargs="+", type=Path, metavar="TCC.db",
                   help="a copy of ~/Library/Application Support/com.apple.TCC/TCC.db or "
                   "/Library/Application Support/com.apple.TCC/TCC.db (opened read-only)")
    t.add_argument("--json", action="store_true",
                   help='{"entries": [{"service", "client", "allowed", "last_modified", '
                   '"file"}], "errors": [...]}; allowed is null for "unknown" or "limited", '
                   "last_modified RFC 3339 UTC (null before macOS 10.14)")
    t.set_defaults(func=cmd_macos_tcc)
    g = fsub.add_parser(
        "macos-log", parents=[common],
        help="a saved `log show --style ndjson` capture: the camera and microphone sessions "
        "it attributes, with the pattern that matched")
    g.add_argument("file", type=Path, metavar="FILE",
                   help="the capture, one JSON object per line (for instance `log show "
                   "--style ndjson --last 1d --predicate 'subsystem == \"com.apple.cmio\"' "
                   "> cap.ndjson`)")
    g.add_argument("--macos", metavar="VERSION",
                   help="the macOS that wrote it (14.5): only its patterns count; default: "
                   "every known pattern")
    g.add_argument("--json", action="store_true",
                   help='{"sessions": [{"kind", "pid", "start", "start_utc", "stop", '
                   '"stop_utc", "pattern", "confidence", "stop_pattern"}], "lines", '
                   '"matched", "unattributed_stops", "truncated"}')
    g.set_defaults(func=cmd_macos_log)


def _tolerant_stdout() -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def cmd_macos_tcc(args: argparse.Namespace) -> int:
    _tolerant_stdout()
    entries: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for path in args.files:
        try:
            found = macos_tcc_entries(path)
        except OSError as exc:
            errors.append({"file": str(path), "error": str(exc)})
            continue
        entries.extend(e.as_json() | {"last_modified": rfc3339(e.last_modified),
                                      "file": str(path)} for e in found)
    if args.json:
        print(json_text({"entries": entries, "errors": errors}, indent=1))
    elif entries or not errors:
        _tcc_table(entries)
    for err in errors:
        print(f"camguard: error: {literal(err['error'], 600)}", file=sys.stderr)
    return EXIT_FAILED if errors else EXIT_DONE


def _answer(allowed: bool | None) -> str:
    return "allowed" if allowed else "denied" if allowed is False else "other"


def _tcc_table(entries: list[dict[str, Any]]) -> None:
    if not entries:
        print("no camera, microphone or screen recording entries")
        return
    header = ("SERVICE", "ANSWER", "LAST CHANGE (UTC)", "CLIENT")
    rows = [header] + [(e["service"], _answer(e["allowed"]), e["last_modified"] or "unknown",
                        literal(e["client"], 400)) for e in entries]
    _print_rows(rows)


def _print_rows(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])


def _open_regular(path: Path) -> IO[bytes]:
    """A regular file for reading (never blocks on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise OSError("not a regular file")
    return f


def bounded_lines(f: IO[bytes], limit: int = MAX_LINE) -> Iterator[bytes]:
    """The lines of ``f``; a line longer than ``limit`` comes out as one empty line, read in
    chunks and never kept whole."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (more := f.readline(CHUNK)) and not more.endswith(b"\n"):
                pass
            yield b""
            continue
        yield line


def cmd_macos_log(args: argparse.Namespace) -> int:
    _tolerant_stdout()
    try:
        with _open_regular(args.file) as f:
            report = macos_log_sessions(bounded_lines(f), args.macos)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"camguard: error: {literal(str(args.file), 300)}: {literal(why, 300)}",
              file=sys.stderr)
        return EXIT_FAILED
    sessions = [s.to_json() for s in report.sessions]
    if args.json:
        print(json_text({"sessions": sessions, "lines": report.lines,
                         "matched": report.matched,
                         "unattributed_stops": report.unattributed_stops,
                         "truncated": report.truncated}, indent=1))
        return EXIT_DONE
    if not sessions:
        print(f"no camera or microphone session attributed ({report.lines} lines read, none "
              "matched a known pattern): an owner the log does not name stays unknown")
        return EXIT_DONE
    header = ("KIND", "PID", "START (log time)", "STOP (log time)", "CONFIDENCE", "PATTERN")
    rows = [header] + [(s.kind.value, str(s.pid), literal(s.start, 64) or "?",
                        literal(s.stop, 64) if s.stop is not None else "-",
                        s.confidence.value, s.pattern.value) for s in report.sessions]
    _print_rows(rows)
    print(f"{report.lines} lines read, {report.matched} matched")
    if report.unattributed_stops:
        print(f"{report.unattributed_stops} camera endpoint removal(s) the log does not pin on "
              "one process (several sessions were open)")
    if report.truncated:
        print("more sessions than camguard lists; the rest are left out")
    return EXIT_DONE
