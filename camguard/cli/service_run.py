"""``camguard service``: the command-line half of the system service (the warning when not
root, the signals, the one-line errors); camguard.app.service builds and runs it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from camguard.app.service import ServiceError, ServiceOptions, Stop
from camguard.app.service import run_service as run
from camguard.cli.common import CliError, detection_settings
from camguard.core.defaults import DEFAULT_POLICY_FILE
from camguard.core.text import literal
from camguard.platform import host_system_service


def run_service(args: argparse.Namespace) -> int:
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # Windows: the SCM runs it as SYSTEM
        print("camguard: warning: the service is not running as root: it sees only its own "
              "account's processes and cannot block devices", file=sys.stderr)
    if args.policy_file != DEFAULT_POLICY_FILE and not _exists(args.policy_file):
        # The service follows its policy file (one that appears later is applied and
        # recorded), so a missing one is not refused; but it is said, never silent.
        print(f"camguard: warning: the policy file {literal(str(args.policy_file), 500)} "
              "does not exist: no managed policy until it appears", file=sys.stderr)
    settings = replace(detection_settings(args), watch_sound_server=False)
    options = ServiceOptions(policy_file=args.policy_file, admin_group=args.admin_group,
                             rules_file=args.rules_file, events_file=args.events_file,
                             socket=args.socket, heartbeat=args.heartbeat,
                             max_clients=args.max_clients, max_per_user=args.max_per_user,
                             lock_backoff=args.lock_backoff)
    stop = Stop()

    def on_signal(signum: int, _frame: object) -> None:
        stop.request(f"stopped by {signal.Signals(signum).name}")

    scm = bool(getattr(args, "windows_service", False))
    if not scm:  # under the SCM, its stop and shutdown controls stop the service
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        host_system_service(lambda: run(options, settings, stop), stop.request, scm=scm)
    except (ServiceError, OSError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return True  # there, but unreadable: the policy reader says so loudly
