"""The CLI's Guard (app/guard.py): chosen once per command, the service's when one runs (or
``--socket`` names one), else this program's; and the printers shared by both sides
(failures, the service's other events, gaps). Also the parental-lock password prompt.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Mapping
from pathlib import Path

from camguard.cli.common import (
    EXIT_BAD_ARGS,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    CliError,
    detection_settings,
)
from camguard.core.text import json_text, literal

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:  # the rest is imported where used: a command loads what it runs (issue 16)
    from typing import Any

    from camguard.app.guard import Guard
    from camguard.app.guard_error import GuardError


def _exit_codes() -> dict[str, int]:
    from camguard.service import wire as P

    return {P.DENIED: EXIT_REFUSED, P.PASSWORD_REQUIRED: EXIT_REFUSED,
            P.WRONG_PASSWORD: EXIT_REFUSED, P.LOCKED_OUT: EXIT_REFUSED,
            P.NOT_FOUND: EXIT_NOT_FOUND, P.BAD_REQUEST: EXIT_BAD_ARGS}


def guard(args: argparse.Namespace, *, db: Path | None = None) -> Guard:
    """The one place a command learns whether a service answers. ``db``: a history
    database the user named, read locally whatever runs."""
    def local() -> Guard:
        from camguard.app.guard_local import LocalGuard

        return LocalGuard(lambda: detection_settings(args), db=db)

    if db is not None or _no_service_socket(getattr(args, "socket", None)):
        return local()
    from camguard.app.guard_error import GuardError
    from camguard.app.guard_service import open_guard

    try:
        return open_guard(getattr(args, "socket", None), local, warn=_warn)
    except GuardError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None


def no_service(args: argparse.Namespace) -> bool:
    """Plain already that no service answers this command (see _no_service_socket)."""
    return _no_service_socket(getattr(args, "socket", None))


def _no_service_socket(socket: Path | None) -> bool:
    """Whether it is already plain that no service answers (Linux: no --socket, and no file
    at CAMGUARD_SOCKET or the default socket), so that the command need not import the
    service client, the transport and the platform to find out (issue 16). Anything less
    plain (a file there, a folder that cannot be searched, another OS) is open_guard's to
    decide, as before."""
    if socket is not None or not sys.platform.startswith("linux"):
        return False
    import os

    from camguard.core.defaults import DEFAULT_LINUX_SOCKET

    override = os.environ.get("CAMGUARD_SOCKET")
    path = Path(override) if override else DEFAULT_LINUX_SOCKET
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # EACCES and the like: open_guard says so
    return False


def _warn(message: str) -> None:
    print(f"camguard: warning: {message}", file=sys.stderr)


def refusal(exc: GuardError) -> int:
    """Print what the Guard refused or failed to do; its exit code."""
    return fail({"code": exc.code, "error": str(exc), "outcome": exc.outcome})


def fail(answer: Mapping[str, Any], *, quiet: bool = False) -> int:
    """Print a refusal or failure from the service (unless ``quiet``); its exit code."""
    if not quiet:
        print(f"camguard: {answer.get('code', 'error')}: "
              f"{literal(str(answer.get('error')), 2000)}", file=sys.stderr)
    outcome = answer.get("outcome")
    if outcome in ("refused", "not_found", "failed"):
        return {"refused": EXIT_REFUSED, "not_found": EXIT_NOT_FOUND}.get(outcome, EXIT_FAILED)
    return _exit_codes().get(str(answer.get("code")), EXIT_FAILED)


def exit_code(code: str, otherwise: int) -> int:
    """The exit code of a service's error ``code`` (a bad request is 2), else ``otherwise``."""
    return _exit_codes().get(code, otherwise)


# -- passwords -----------------------------------------------------------------------------
def read_password(args: argparse.Namespace, prompt: str = "parental-lock password: "
                  ) -> str | None:
    """From ``--password-stdin`` (one line), or a hidden prompt when stdin is a terminal;
    never from the command line (other users see it in ps)."""
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if sys.stdin.isatty():
        import getpass  # here: only a prompt needs it

        try:
            return getpass.getpass(prompt)
        except (EOFError, KeyboardInterrupt):
            return None
    return None


def add_password_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-stdin", action="store_true",
                   help="read the parental-lock password from the first line of stdin")


def require_cli_unlock(args: argparse.Namespace, what: str) -> None:
    """Without the service: ask for the local parental-lock password when one is set
    (``unblock``, rule changes); CliError (exit 3) when it is wrong or locked out."""
    from camguard.app.guard_local import local_lock
    from camguard.store.parental_lock import require_unlock

    answer = require_unlock(local_lock(), lambda: read_password(args))
    if not answer.ok:
        raise CliError(f"{what}: {answer.message or 'the parental lock needs its password'}",
                       EXIT_REFUSED)


def gap_line(entry: Mapping[str, Any]) -> str:
    from camguard.app.service_decode import timestamp

    start = timestamp(entry.get("start"))
    when = _dt.datetime.fromtimestamp(start).strftime("%Y-%m-%d %H:%M:%S") if start else "?"
    label = "GAP" if entry.get("kind") == "gap" else "POLICY"
    return f"{when:<19}  {label:>8}  {literal(str(entry.get('message')), 500)}"


def dump(obj: Any) -> str:
    return json_text(obj, indent=2)


def other_line(event: Mapping[str, Any]) -> str:
    """A service event that is not a usage or health event (a rule's decision)."""
    what = literal(str(event.get("explanation") or event.get("message") or ""), 500)
    outcome = f" ({event['outcome']})" if event.get("outcome") else ""
    return (f"{event.get('timestamp')} {event.get('event')!s:<7} "
            f"{event.get('kind') or ''!s:<10} {literal(str(event.get('device') or ''), 200)}"
            f"  {what}{outcome}")
