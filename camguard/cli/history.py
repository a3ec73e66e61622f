"""``camguard history``: past camera and microphone sessions as a table, JSON or CSV (no Qt)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from camguard.cli.common import EXIT_BAD_ARGS, CliError

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name). The rest is
# imported when the command runs, and `history --json` loads no model or store class at all
# (store/history_json.py; issue 16).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from camguard.store.history_record import SessionRecord

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d|w)(?:\s+ago)?", re.IGNORECASE)
_WHEN_HELP = ("an ISO date or time (2026-05-01, 2026-05-01T14:30, 2026-05-01T14:30:00Z; "
              "local time unless it names a zone), an age (30m, 1h, 7d, 2w), 'today' or "
              "'yesterday'")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("history", parents=[common],
                       help="past camera and microphone sessions, newest first")
    p.add_argument("--since", metavar="WHEN", help=f"sessions active since WHEN: {_WHEN_HELP}")
    p.add_argument("--until", metavar="WHEN", help="sessions that started before WHEN")
    p.add_argument("--kind", choices=["camera", "microphone", "screen", "location"],
                   help="one kind of device")
    p.add_argument("--app", metavar="NAME",
                   help="one app: its name, its executable's file name or full path")
    p.add_argument("--device", metavar="ID", help="one device: its id or name")
    p.add_argument("--search", metavar="TEXT", help="text anywhere in a session")
    p.add_argument("--limit", type=int, metavar="N", help="at most N sessions")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list of sessions")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header line")
    p.add_argument("--db", type=Path, metavar="PATH",
                   help="history database (default: history.sqlite3 in the data folder)")
    # Reading --json straight from the file logs nothing: logging is set up for the rest.
    p.set_defaults(func=cmd_history, configures_logging=True)


def parse_when(text: str, now: float, option: str = "--since") -> float:
    """Seconds since the epoch for a ``--since``/``--until`` value; CliError (exit 2) if bad."""
    value = text.strip()
    low = value.lower()
    if low == "now":
        return now
    if low in ("today", "yesterday"):
        import datetime as _dt

        local = _dt.datetime.fromtimestamp(now).astimezone()
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if low == "yesterday":
            midnight -= _dt.timedelta(days=1)
        return midnight.timestamp()
    match = _RELATIVE.fullmatch(value)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2).lower()]
    import datetime as _dt

    try:
        moment = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: cannot understand {text!r}; use {_WHEN_HELP}",
                       EXIT_BAD_ARGS) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is the user's local time
    return moment.timestamp()


def cmd_history(args: argparse.Namespace) -> int:
    now = time.time()
    since = None if args.since is None else parse_when(args.since, now, "--since")
    until = None if args.until is None else parse_when(args.until, now, "--until")
    if args.limit is not None and args.limit < 0:
        raise CliError("--limit must be 0 or more", EXIT_BAD_ARGS)
    filters = {"since": since, "until": until, "kind": args.kind, "app": args.app,
               "device": args.device, "search": args.search}
    if args.json:
        text = _json_from_rows(args, filters)
        if text is not None:
            print(text)
            args.exit_now = True  # printed all it had, holds nothing: see cli.main
            return 0
    return _through_guard(args, filters)


def _json_from_rows(args: argparse.Namespace, filters: dict[str, Any]) -> str | None:
    """``--json`` read straight from the database file when this program would read it
    itself (no service answers, or ``--db``): the same text as the Guard's answer printed
    by _through_guard, with none of its imports (issue 16). None: let the Guard answer (a
    service, no file yet, a file or row only the store knows how to handle)."""
    from camguard.cli import remote

    if args.db is None and not remote.no_service(args):
        return None
    from camguard.store.history_json import history_text
    from camguard.store.paths import history_file

    return history_text(args.db if args.db is not None else history_file(), filters,
                        args.limit)


def _through_guard(args: argparse.Namespace, filters: dict[str, Any]) -> int:
    from camguard.cli import configure_logging

    configure_logging(args)  # the Guard, the stores and the service client log
    from camguard.app.guard_error import GuardError
    from camguard.cli import remote
    from camguard.core.text import json_text, literal
    from camguard.store.export import session_dict, write_csv
    from camguard.store.tamper import start_of

    try:
        answer = remote.guard(args, db=args.db).history(filters, args.limit)
    except GuardError as exc:
        return remote.refusal(exc)
    for warning in answer.warnings:
        print(f"camguard: warning: {warning}", file=sys.stderr)
    if answer.missing is not None and not (args.json or args.csv):
        print(f"no history yet ({literal(str(answer.missing), 300)} does not exist)",
              file=sys.stderr)
    records, gaps, entries = answer.records, answer.gaps, answer.entries
    if args.json:
        if entries is None:
            entries = sorted([session_dict(r) for r in records] + gaps, key=start_of,
                             reverse=True)
        print(json_text(entries, indent=2))
    elif args.csv:
        write_csv(records, sys.stdout)
    else:
        _print_table(records, gaps)
    return 0


def _local(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _duration(rec: SessionRecord) -> str:
    from camguard.core.timefmt import session_length

    if rec.end is None:
        return "running"
    return session_length(rec.duration if rec.duration is not None else rec.end - rec.start)


def _print_table(records: list[SessionRecord], gaps: Sequence[dict[str, Any]] = ()) -> None:
    from camguard.cli import remote
    from camguard.core.serialize import rfc3339
    from camguard.core.text import literal
    from camguard.store.tamper import start_of

    if not records and not gaps:
        print("no sessions")
        return
    print(f"{'START':<19}  {'LENGTH':>8}  {'KIND':<10}  {'APP':<40}  {'USER':<12}  "
          f"{'DECISION':<16}  DEVICE")
    rows: list[tuple[str, SessionRecord | dict[str, Any]]] = [
        *((start_of(g), g) for g in gaps),
        *((start_of({"start": rfc3339(r.start)}), r) for r in records)]
    for _start, rec in sorted(rows, key=lambda row: row[0], reverse=True):
        if isinstance(rec, dict):
            print(remote.gap_line(rec))
            continue
        if rec.pid is None:
            app = "(a process camguard could not see)"
        else:
            app = f"{literal(rec.name or '?', 24)} (pid {rec.pid})"
        device = literal(rec.device_id, 120)
        if rec.device_name:
            device += f" ({literal(rec.device_name, 60)})"
        print(f"{_local(rec.start):<19}  {_duration(rec):>8}  {rec.kind.value:<10}  "
              f"{app:<40}  {literal(rec.user or '', 12):<12}  "
              f"{literal(rec.decision or '-', 16):<16}  {device}")
        if rec.exe:
            print(f"{'':<19}  {'':>8}  {'':<10}  {literal(rec.exe, 200)}")
        if rec.end_reason:
            print(f"{'':<19}  {'':>8}  {'':<10}  ({literal(rec.end_reason, 200)})")
