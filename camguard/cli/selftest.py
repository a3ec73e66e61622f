"""``selftest``: use every camera and microphone for real; prove detection and the kill switch."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from camguard.cli.common import detection_settings
from camguard.core.text import json_text, literal

EPILOG = """What it does: opens each camera (OpenCV) and holds it open, records about a second
from the sound server's default microphone (sounddevice), and checks that camguard named
its own process for each; then switches camera and microphone off (a 10-minute timed
block), checks they are off, switches them back on (always, even on failure or Ctrl+C) and
checks that modes, owners, ACLs and mute states are exactly as before.

A check is "not-provable" when this machine cannot show it either way (a stand-in node is
not a camera; root opens any node whatever its mode; no sound server). The kill switch is
not tested while a block of yours is on, or while another program holds a device (the
block would end it).

exit codes:
  0  nothing failed
  1  something failed (or the selftest was interrupted)"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("selftest", parents=[common], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="use each camera and microphone and prove camguard sees and "
                       "blocks them")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-block", action="store_true",
                   help="only test detection; do not switch anything off")
    p.set_defaults(func=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    from camguard.app.own_activity import claim_own_activity
    from camguard.selftest.runner import run_selftest

    settings = detection_settings(args)
    blocks = None
    if not args.no_block and sys.platform.startswith("linux"):
        from camguard.app.killswitch import build_block_manager

        blocks = build_block_manager(settings)
        # A block whose time is up (e.g. of a selftest that was killed) is lifted first,
        # as every kill-switch command does; the selftest then sees the true state.
        for problem in blocks.expire_due().problems:
            print(f"camguard: warning: {literal(problem, 500)}", file=sys.stderr)
    cancel = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        # Not an exception: it could land in the middle of switching devices back on.
        cancel.set()

    old = {n: signal.signal(n, stop) for n in (signal.SIGINT, signal.SIGTERM)}
    show = (lambda line: print(f"camguard: selftest: {line}", file=sys.stderr, flush=True)) \
        if not args.json and sys.stderr.isatty() else None
    try:
        # This account's tray does not alert about, nor record, the self-test's own opens.
        with claim_own_activity():
            report = run_selftest(settings, blocks=blocks, cancel=cancel, progress=show)
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
    if args.json:
        print(json_text(report.as_dict(), indent=2))
    else:
        for c in report.snapshot():
            where = f" {literal(c.device, 200)}" if c.device else ""
            print(f"{c.status.value.upper():<13} {c.name}{where}: {c.detail}")
        total = report.summary()
        print(f"selftest: {total['passed']} passed, {total['failed']} failed, "
              f"{total['not_provable']} not provable ({total['seconds']:.1f} s)")
    return 0 if report.ok else 1
