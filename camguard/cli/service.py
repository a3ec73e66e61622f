"""``camguard service`` (the root daemon for every account), ``lock`` (the parental lock),
``pause`` and ``resume`` (the rules, through the service)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from camguard.app.guard import GuardError, Reply
from camguard.cli import remote
from camguard.cli.actions import EXIT_CODES
from camguard.cli.common import EXIT_BAD_ARGS, EXIT_DONE, CliError
from camguard.core.blocks import parse_duration
from camguard.core.defaults import DEFAULT_ADMIN_GROUP, DEFAULT_POLICY_FILE
from camguard.core.text import literal


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most a day: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def _duration(text: str) -> float | None:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("service", parents=[common],
                       help="the system service: watches, records and enforces for every "
                       "account, and serves the socket API (run as root, by systemd)")
    p.add_argument("--admin-group", default=DEFAULT_ADMIN_GROUP, metavar="GROUP",
                   help="members see and control every account's sessions (default: "
                   f"{DEFAULT_ADMIN_GROUP}; root always may)")
    p.add_argument("--heartbeat", type=_positive, default=30.0, metavar="SECONDS",
                   help="how often to note that camguard is alive (default: 30)")
    p.add_argument("--policy-file", type=Path, default=DEFAULT_POLICY_FILE, metavar="PATH",
                   help=f"managed policy (default: {DEFAULT_POLICY_FILE})")
    p.add_argument("--rules-file", type=Path, default=None, metavar="PATH",
                   help="the service's own rules (default: rules.json in CAMGUARD_CONFIG_DIR, "
                   "/etc/camguard)")
    p.add_argument("--max-clients", type=_count, default=64, metavar="N",
                   help="connections served at once (default: 64; the last 8 only for "
                   "admins)")
    p.add_argument("--max-per-user", type=_count, default=8, metavar="N",
                   help="connections one account that is not an admin may hold, watches "
                   "included (default: 8)")
    p.add_argument("--lock-backoff", type=_positive, default=1.0, metavar="SECONDS",
                   help="first wait after a wrong lock password; doubles, up to 5 minutes")
    p.add_argument("--windows-service", action="store_true",
                   help="started by Windows' Service Control Manager (the MSI registers "
                   "the service with this)")
    p.set_defaults(func=cmd_service)

    p = sub.add_parser("lock", parents=[common], help="the parental lock: a password that "
                       "guards unblock, pause, quit and rule changes")
    lsub = p.add_subparsers(dest="lock_command", metavar="ACTION", required=True)
    q = lsub.add_parser("set-password", parents=[common],
                        help="set or change the password (stdin: the current one first, "
                        "if a lock is set, then the new one)")
    remote.add_password_option(q)
    q.set_defaults(func=cmd_lock_set)
    q = lsub.add_parser("clear", parents=[common], help="remove the lock (needs the password)")
    remote.add_password_option(q)
    q.set_defaults(func=cmd_lock_clear)
    q = lsub.add_parser("status", parents=[common], help="is a lock set, and any wait")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_lock_status)

    p = sub.add_parser("pause", parents=[common],
                       help="stop enforcing the rules for a while (through the service)")
    p.add_argument("--for", dest="duration", type=_duration, default=None, metavar="TIME",
                   help="15m, 1h... (default: until `camguard resume`)")
    remote.add_password_option(p)
    p.set_defaults(func=cmd_pause)
    p = sub.add_parser("resume", parents=[common], help="enforce the rules again")
    p.set_defaults(func=cmd_resume)


def cmd_service(args: argparse.Namespace) -> int:
    from camguard.cli.service_run import run_service

    return run_service(args)


# -- the parental lock -------------------------------------------------------------------------
def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        new = line[:-1] if line.endswith("\n") else line
    elif sys.stdin.isatty():
        import getpass

        new = getpass.getpass("new parental-lock password: ")
        if getpass.getpass("the same again: ") != new:
            raise CliError("the two passwords differ; nothing changed", EXIT_BAD_ARGS)
    else:
        raise CliError("give the password with --password-stdin (never on the command line)",
                       EXIT_BAD_ARGS)
    if not new:
        raise CliError("an empty password is not a lock", EXIT_BAD_ARGS)
    return new


def cmd_lock_set(args: argparse.Namespace) -> int:
    guard = remote.guard(args)
    try:
        reply = guard.lock_set(lambda: _new_password(args), lambda: remote.read_password(
            args, "current parental-lock password: "))
    except GuardError as exc:
        return remote.refusal(exc)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_BAD_ARGS) from None
    return _replied(reply)


def cmd_lock_clear(args: argparse.Namespace) -> int:
    try:
        reply = remote.guard(args).lock_clear(lambda: remote.read_password(args))
    except GuardError as exc:
        return remote.refusal(exc)
    return _replied(reply)


def cmd_lock_status(args: argparse.Namespace) -> int:
    try:
        lock = remote.guard(args).lock_status()
    except GuardError as exc:
        return remote.refusal(exc)
    doc = {k: lock.doc.get(k) for k in ("set", "failures", "retry_after", "damaged")}
    if args.json:
        print(json.dumps({**doc, "kept_by": lock.where}, indent=2))
        return EXIT_DONE
    print(f"parental lock: {'on' if doc['set'] else 'off'} (kept by {literal(lock.where, 300)})")
    if doc.get("damaged"):
        print(f"the lock file is damaged: {literal(str(doc['damaged']), 300)}")
    if doc.get("retry_after"):
        print(f"after {doc['failures']} wrong password(s), the next try is allowed in "
              f"{doc['retry_after']} s")
    return EXIT_DONE


# -- pause and resume --------------------------------------------------------------------------
def cmd_pause(args: argparse.Namespace) -> int:
    guard = remote.guard(args)
    try:
        reply = guard.pause(args.duration, lambda: remote.read_password(args))
    except GuardError as exc:
        return remote.refusal(exc)
    return _replied(reply)


def cmd_resume(args: argparse.Namespace) -> int:
    try:
        reply = remote.guard(args).resume()
    except GuardError as exc:
        return remote.refusal(exc)
    return _replied(reply)


def _replied(reply: Reply) -> int:
    if reply.ok:
        print(reply.message)
        return EXIT_DONE
    print(f"camguard: {reply.code}: {literal(reply.message, 2000)}", file=sys.stderr)
    return remote.exit_code(reply.code, EXIT_CODES[reply.outcome])
