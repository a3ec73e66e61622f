"""``kill``, ``block``, ``unblock``, ``blocks`` and ``panic``: the kill switch from a terminal."""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Callable
from typing import Any

from camguard.app.guard import BlockLine, GuardError, Part, Reply
from camguard.cli import keeper, remote
from camguard.cli.argtypes import choice_of
from camguard.cli.common import EXIT_DONE, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_REFUSED
from camguard.core.blocks import (
    BlockOptions,
    BlockTarget,
    Outcome,
    StepKind,
    format_duration,
    parse_duration,
)
from camguard.core.text import json_text, literal

EXIT_CODES = {Outcome.DONE: EXIT_DONE, Outcome.FAILED: EXIT_FAILED,
              Outcome.REFUSED: EXIT_REFUSED, Outcome.NOT_FOUND: EXIT_NOT_FOUND}

EPILOG = """exit codes:
  0  done
  1  failed (part or all of it; the message says what is left)
  2  bad arguments
  3  refused (a protected process, or not authorized / no privileges)
  4  not found (no such process, or no such device)

Timed blocks end at their time while camguard runs, otherwise at its next start
(any camguard command lifts blocks whose time is up)."""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("kill", parents=[common], epilog=EPILOG, formatter_class=fmt,
                       help="end a process (SIGTERM, then SIGKILL after 3 s)")
    p.add_argument("pid", type=_pid, metavar="PID")
    p.add_argument("--force", action="store_true", help="SIGKILL at once (no time to clean up)")
    p.add_argument("--create-time", type=float, metavar="SECONDS",
                   help="only if PID still has this start time (from `status --json`)")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("block", parents=[common], epilog=EPILOG, formatter_class=fmt,
                       help="switch the camera and/or microphone off")
    p.add_argument("target", type=choice_of(BlockTarget), metavar="WHAT",
                   help="camera, microphone or all")
    p.add_argument("--for", dest="duration", type=_duration, default=None, metavar="TIME",
                   help="15m, 1h, 90s, 2h30m... (default: until you turn it back on)")
    p.add_argument("--unbind-usb", action="store_true",
                   help="also detach USB cameras from their driver (root or helper)")
    p.add_argument("--persistent", action="store_true",
                   help="also keep new camera nodes closed across replug and reboot (udev)")
    p.set_defaults(func=cmd_block)

    p = sub.add_parser("unblock", parents=[common], epilog=EPILOG, formatter_class=fmt,
                       help="switch the camera and/or microphone back on")
    p.add_argument("target", type=choice_of(BlockTarget), metavar="WHAT",
                   help="camera, microphone or all")
    remote.add_password_option(p)
    p.set_defaults(func=cmd_unblock)

    p = sub.add_parser("blocks", parents=[common], epilog=EPILOG, formatter_class=fmt,
                       help="what is switched off, how, and until when")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_blocks)

    p = sub.add_parser("panic", parents=[common], epilog=EPILOG, formatter_class=fmt,
                       help="everything off now, until you turn it back on")
    p.set_defaults(func=cmd_panic)


def _pid(text: str) -> int:
    if not text.isdigit() or int(text) <= 0 or len(text) > 10:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return int(text)


def _duration(text: str) -> float | None:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


# -- commands ------------------------------------------------------------------------------------
def cmd_kill(args: argparse.Namespace) -> int:
    guard = remote.guard(args)
    return _answered(lambda: guard.kill(args.pid, args.create_time, force=args.force))


def cmd_block(args: argparse.Namespace) -> int:
    guard = remote.guard(args)
    options = BlockOptions(unbind_usb=args.unbind_usb, persistent=args.persistent)
    return _answered(lambda: guard.block(args.target, args.duration, options), args)


def cmd_unblock(args: argparse.Namespace) -> int:
    guard = remote.guard(args)
    return _answered(lambda: guard.unblock(args.target, lambda: remote.read_password(args)))


def cmd_panic(args: argparse.Namespace) -> int:
    guard = remote.guard(args)
    return _answered(guard.panic, args)


def cmd_blocks(args: argparse.Namespace) -> int:
    try:
        answer = remote.guard(args).blocks()
    except GuardError as exc:
        return remote.refusal(exc)
    if args.json:
        print(json_text(answer.doc, indent=2))
    else:
        _print_lifted(answer.lifted)
        if not answer.blocks:
            print("nothing is blocked")
        for b in answer.blocks:
            print(f"{b.kind:<10}  off {_until_text(b)}")
            for line in _how(b):
                print(f"    {line}")
        for p in answer.problems:
            print(f"camguard: warning: {literal(p, 500)}", file=sys.stderr)
    return EXIT_CODES[answer.outcome]


# -- output (one printer, whichever side answered) -----------------------------------------------
def _until_text(b: BlockLine) -> str:
    since = _local(b.since)
    if b.until is None:
        return f"since {since}, until you turn it back on"
    return f"since {since}, until {_local(b.until)} ({format_duration(b.seconds_left or 0.0)} " \
        "left)"


def _how(b: BlockLine) -> list[str]:
    out = []
    for kind, target in b.how:
        if kind is StepKind.NODE:  # what it was: in --json, where the block is one's own
            out.append(f"{literal(target, 200)} closed (0000 root:root)")
        elif kind is StepKind.USB:
            out.append(f"USB interface {literal(target, 64)} unbound from its driver")
        elif kind is StepKind.UDEV_RULE:
            out.append(f"udev rule {literal(target, 200)} keeps new camera nodes closed")
        elif kind is StepKind.MIC_MUTE:
            out.append("microphones muted at the sound server")
        elif kind is StepKind.USER_GUARD:
            out.append(f"apps of {_account(target)} that open it are closed by camguard's "
                       "tray (other accounts are not covered)")
        else:
            out.append(f"{literal(str(kind), 64)} {literal(target, 200)}")
    return out


def _account(uid_text: str) -> str:
    try:
        import pwd

        return literal(pwd.getpwuid(int(uid_text)).pw_name, 64)
    except (ImportError, KeyError, ValueError):
        return f"uid {literal(uid_text, 12)}"


def _local(ts: float | None) -> str:
    if ts is None:
        return "?"
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print_lifted(lifted: tuple[Part, ...]) -> None:
    for part in lifted:
        print(f"{part.kind}: time is up, switched back on"
              + ("" if part.outcome is Outcome.DONE
                 else f" (failed: {literal(part.message, 300)})"))


# How an action that did not work out is said (Outcome's values are for scripts: --json).
_WORDS = {Outcome.FAILED: "failed", Outcome.REFUSED: "refused",
          Outcome.NOT_FOUND: "nothing to do", Outcome.DONE: "done"}


def _answered(ask: Callable[[], Reply], args: argparse.Namespace | None = None) -> int:
    """Print a Reply: the same lines for a local and a served kill, block or unblock."""
    try:
        reply = ask()
    except GuardError as exc:
        return remote.refusal(exc)
    for p in reply.problems:
        print(f"camguard: warning: {literal(p, 500)}", file=sys.stderr)
    for part in reply.parts:
        if part.outcome is Outcome.DONE:
            print(f"{part.kind}: {literal(part.message, 2000)}")
        else:
            print(f"{part.kind}: {_WORDS[part.outcome]}: {literal(part.message, 2000)}",
                  file=sys.stderr)
    if not reply.parts:
        if reply.ok:
            print(literal(reply.message, 2000))
        else:
            print(f"camguard: {reply.code}: {literal(reply.message, 2000)}", file=sys.stderr)
    # A failure to record the block shows only in the overall result's details.
    for d in reply.details:
        if d.startswith("could not record"):
            print(f"camguard: error: {literal(d, 500)}", file=sys.stderr)
    _print_lifted(reply.lifted)
    for b in reply.now_off:
        print(f"{b.kind}: off {_until_text(b)}")
    if reply.keeper and args is not None:
        keeper.start_keeper(args)  # ends it on time, guards it, when no tray runs
    if reply.ok or reply.parts:
        return EXIT_CODES[reply.outcome]
    return remote.exit_code(reply.code, EXIT_CODES[reply.outcome])
