"""``kill``, ``block``, ``unblock``, ``blocks`` and ``panic``: the kill switch from a terminal."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from typing import Any

from camguard.app.killswitch import build_block_manager, build_killer
from camguard.cli import keeper, remote
from camguard.cli.argtypes import choice_of
from camguard.cli.common import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    detection_settings,
)
from camguard.core.blocks import (
    ActionResult,
    ActiveBlock,
    BlockManager,
    BlockOptions,
    BlockReport,
    BlockTarget,
    Outcome,
    StepKind,
    format_duration,
    parse_duration,
)
from camguard.core.serialize import rfc3339
from camguard.core.text import json_safe, json_text, literal
from camguard.platform.clock import SystemClock

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
    if (client := remote.service_client(args)) is not None:
        return _served(remote.call(lambda: client.kill(args.pid, args.create_time,
                                                       force=args.force)))
    result: ActionResult = build_killer(detection_settings(args)).kill(
        args.pid, args.create_time, force=args.force)
    return _finish(result)


def cmd_block(args: argparse.Namespace) -> int:
    if (client := remote.service_client(args)) is not None:
        return _served(remote.call(lambda: client.block(
            args.target.value, args.duration, unbind_usb=args.unbind_usb,
            persistent=args.persistent)))
    manager = build_block_manager(detection_settings(args))
    report = manager.block(args.target, args.duration,
                           BlockOptions(unbind_usb=args.unbind_usb, persistent=args.persistent))
    code = _print_report(report)
    # Expired blocks are lifted after, not before: lifting an expired camera block first and
    # then blocking the camera again would open it for a moment.
    _expire(manager)
    blocks, _ = manager.active()
    if report.parts and any(r.ok for _, r in report.parts):
        for b in blocks:
            if b.kind in args.target.kinds:
                print(f"{b.kind.value}: off {_until_text(b, SystemClock().now())}")
    if keeper.needs_keeper(blocks, os.geteuid()):
        keeper.start_keeper(args)  # ends it on time, guards it, when no tray runs
    return code


def cmd_unblock(args: argparse.Namespace) -> int:
    if (client := remote.service_client(args)) is not None:
        return _served(remote.with_password(
            args, lambda password: client.unblock(args.target.value, password)))
    remote.require_cli_unlock(args, f"unblocking the {args.target.value}")
    manager = build_block_manager(detection_settings(args))
    _expire(manager)
    return _print_report(manager.unblock(args.target))


def cmd_panic(args: argparse.Namespace) -> int:
    if (client := remote.service_client(args)) is not None:
        return _served(remote.call(lambda: client.block("all")))
    manager = build_block_manager(detection_settings(args))
    code = _print_report(manager.panic())
    _expire(manager)  # nothing of camera or microphone is due now; this only tidies up
    if keeper.needs_keeper(manager.active()[0], os.geteuid()):
        keeper.start_keeper(args)
    return code


def cmd_blocks(args: argparse.Namespace) -> int:
    if (client := remote.service_client(args)) is not None:
        return remote.print_blocks(remote.call(client.blocks), args.json)
    manager = build_block_manager(detection_settings(args))
    lifted = manager.expire_due()
    blocks, problems = manager.active()
    problems = [*lifted.problems, *problems]
    now = SystemClock().now()
    if args.json:
        doc = {"blocks": [block_dict(b, now) for b in blocks],
               "lifted": [k.value for k, r in lifted.parts if r.ok],
               "problems": [json_safe(p) for p in problems]}
        print(json_text(doc, indent=2))
    else:
        for kind, r in lifted.parts:
            print(f"{kind.value}: time is up, switched back on"
                  + ("" if r.ok else f" (failed: {literal(r.message, 300)})"))
        if not blocks:
            print("nothing is blocked")
        for b in blocks:
            print(f"{b.kind.value:<10}  off {_until_text(b, now)}")
            for line in _how(b):
                print(f"    {line}")
        for p in problems:
            print(f"camguard: warning: {literal(p, 500)}", file=sys.stderr)
    return EXIT_CODES[lifted.result.outcome] if lifted.parts else EXIT_DONE


# -- output --------------------------------------------------------------------------------------
def block_dict(b: ActiveBlock, now: float) -> dict[str, Any]:
    left = b.left(now)
    return {
        "kind": b.kind.value,
        "since": rfc3339(b.since),
        "until": rfc3339(b.until),
        "seconds_left": None if left is None else round(left, 3),
        "how": [{"kind": s.kind.value, "target": json_safe(s.target),
                 "saved": None if s.saved is None else {
                     "mode": f"{s.saved.mode:04o}", "uid": s.saved.uid, "gid": s.saved.gid,
                     "acl": None if s.saved.acl is None else s.saved.acl.hex()}}
                for s in b.steps],
    }


def _until_text(b: ActiveBlock, now: float) -> str:
    since = _local(b.since)
    if b.until is None:
        return f"since {since}, until you turn it back on"
    left = b.left(now) or 0.0
    return f"since {since}, until {_local(b.until)} ({format_duration(left)} left)"


def _how(b: ActiveBlock) -> list[str]:
    out = []
    for s in b.steps:
        if s.kind is StepKind.NODE:
            was = ""
            if s.saved is not None:
                acl = " with an ACL" if s.saved.acl else ""
                was = f" (was {s.saved.mode:04o} {s.saved.uid}:{s.saved.gid}{acl})"
            out.append(f"{literal(s.target, 200)} closed (0000 root:root){was}")
        elif s.kind is StepKind.USB:
            out.append(f"USB interface {literal(s.target, 64)} unbound from its driver")
        elif s.kind is StepKind.UDEV_RULE:
            out.append(f"udev rule {literal(s.target, 200)} keeps new camera nodes closed")
        elif s.kind is StepKind.MIC_MUTE:
            out.append("microphones muted at the sound server")
        elif s.kind is StepKind.USER_GUARD:
            out.append(f"apps of {_account(s.target)} that open it are closed by camguard's "
                       "tray (other accounts are not covered)")
    return out


def _account(uid_text: str) -> str:
    try:
        import pwd

        return literal(pwd.getpwuid(int(uid_text)).pw_name, 64)
    except (ImportError, KeyError, ValueError):
        return f"uid {literal(uid_text, 12)}"


def _local(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _expire(manager: BlockManager) -> None:
    lifted = manager.expire_due()
    for kind, r in lifted.parts:
        print(f"{kind.value}: time is up, switched back on"
              + ("" if r.ok else f" (failed: {literal(r.message, 300)})"))
    for p in lifted.problems:
        print(f"camguard: warning: {literal(p, 500)}", file=sys.stderr)


def _print_report(report: BlockReport) -> int:
    for p in report.problems:
        print(f"camguard: warning: {literal(p, 500)}", file=sys.stderr)
    for kind, r in report.parts:
        if r.ok:
            print(f"{kind.value}: {literal(r.message, 2000)}")
        else:
            print(f"{kind.value}: {r.outcome.value}: {literal(r.message, 2000)}",
                  file=sys.stderr)
    if not report.parts and not report.result.ok:
        print(f"camguard: error: {literal(report.result.message, 500)}", file=sys.stderr)
    # A failure to record the block shows only in the overall result's details.
    for d in report.result.details:
        if d.startswith("could not record"):
            print(f"camguard: error: {literal(d, 500)}", file=sys.stderr)
    return EXIT_CODES[report.result.outcome]


def _served(answer: dict[str, Any]) -> int:
    """Print what the service did (the same lines as a local kill or block)."""
    for part in answer.get("parts") or []:
        line = f"{part['kind']}: {literal(str(part['message']), 2000)}"
        if part.get("outcome") == "done":
            print(line)
        else:
            print(f"{part['kind']}: {part['outcome']}: {literal(str(part['message']), 2000)}",
                  file=sys.stderr)
    for p in answer.get("problems") or []:
        print(f"camguard: warning: {literal(str(p), 500)}", file=sys.stderr)
    if answer.get("ok") is True:
        if not answer.get("parts"):
            print(literal(str(answer.get("message", "")), 2000))
        return EXIT_DONE
    return remote.fail(answer, quiet=bool(answer.get("parts")))


def _finish(result: ActionResult) -> int:
    if result.ok:
        print(literal(result.message, 2000))
    else:
        print(f"camguard: {result.outcome.value}: {literal(result.message, 2000)}",
              file=sys.stderr)
    return EXIT_CODES[result.outcome]
