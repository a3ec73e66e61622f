"""The CLI through the system service: when it runs (or ``--socket`` names one), ``status``,
``watch``, ``history``, ``kill``, ``block``, ``unblock`` and ``blocks`` are requests to it,
and show or touch only what the caller may. Also the parental-lock password prompt.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import getpass
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from camguard.cli.common import (
    EXIT_BAD_ARGS,
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    CliError,
)
from camguard.core.models import (
    Device,
    DeviceKind,
    EventType,
    HealthEvent,
    MonitorEvent,
    ProcessRef,
    Usage,
    UsageEvent,
)
from camguard.core.state import GuardState
from camguard.core.text import json_text, literal
from camguard.platform.clock import SystemClock
from camguard.service import protocol as P
from camguard.service.client import (
    ServiceClient,
    ServiceImpostor,
    ServiceUnavailable,
    default_socket,
)
from camguard.store import paths
from camguard.store.history import SessionRecord
from camguard.store.lock import FILE_NAME, LockGuard, require_unlock

_EXIT = {P.DENIED: EXIT_REFUSED, P.PASSWORD_REQUIRED: EXIT_REFUSED,
         P.WRONG_PASSWORD: EXIT_REFUSED, P.LOCKED_OUT: EXIT_REFUSED,
         P.NOT_FOUND: EXIT_NOT_FOUND, P.BAD_REQUEST: EXIT_BAD_ARGS}


def service_client(args: argparse.Namespace) -> ServiceClient | None:
    """A client when a service answers (``--socket``, else the default socket); None to
    work locally. A ``--socket`` that does not answer is an error, not a silent fallback."""
    given: Path | None = getattr(args, "socket", None)
    if given is not None:
        client = ServiceClient(given)
        try:
            hello = client.hello()
        except ServiceUnavailable as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
        if hello.get("ok") is not True:
            raise CliError(f"{given} did not answer like a camguard service", EXIT_FAILED)
        return client
    path = default_socket()
    if not path.exists():
        return None
    client = ServiceClient(path)
    try:
        return client if client.hello().get("ok") is True else None
    except ServiceImpostor as exc:  # never fall back quietly past an impostor
        raise CliError(str(exc), EXIT_FAILED) from None
    except ServiceUnavailable:
        return None


def call(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except ServiceUnavailable as exc:
        raise CliError(str(exc), EXIT_FAILED) from None


def fail(answer: Mapping[str, Any], *, quiet: bool = False) -> int:
    """Print a refusal or failure from the service (unless ``quiet``); its exit code."""
    if not quiet:
        print(f"camguard: {answer.get('code', 'error')}: "
              f"{literal(str(answer.get('error')), 2000)}", file=sys.stderr)
    outcome = answer.get("outcome")
    if outcome in ("refused", "not_found", "failed"):
        return {"refused": EXIT_REFUSED, "not_found": EXIT_NOT_FOUND}.get(outcome, EXIT_FAILED)
    return _EXIT.get(str(answer.get("code")), EXIT_FAILED)


# -- passwords -----------------------------------------------------------------------------
def read_password(args: argparse.Namespace, prompt: str = "parental-lock password: "
                  ) -> str | None:
    """From ``--password-stdin`` (one line), or a hidden prompt when stdin is a terminal;
    never from the command line (other users see it in ps)."""
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if sys.stdin.isatty():
        try:
            return getpass.getpass(prompt)
        except (EOFError, KeyboardInterrupt):
            return None
    return None


def add_password_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-stdin", action="store_true",
                   help="read the parental-lock password from the first line of stdin")


def local_lock() -> LockGuard:
    return LockGuard(paths.config_dir() / FILE_NAME, SystemClock())


def require_cli_unlock(args: argparse.Namespace, what: str) -> None:
    """Without the service: ask for the local parental-lock password when one is set
    (``unblock``, rule changes); CliError (exit 3) when it is wrong or locked out."""
    answer = require_unlock(local_lock(), lambda: read_password(args))
    if not answer.ok:
        raise CliError(f"{what}: {answer.message or 'the parental lock needs its password'}",
                       EXIT_REFUSED)


def with_password(args: argparse.Namespace, send: Callable[[str | None], dict[str, Any]]
                  ) -> dict[str, Any]:
    """Send without a password; when the service says one is needed, ask and send again."""
    first = call(lambda: send(None))
    if first.get("code") != P.PASSWORD_REQUIRED:
        return first
    password = read_password(args)
    if password is None:
        return first  # no terminal and no --password-stdin: report what the service said
    return call(lambda: send(password))


# -- dicts from the service back into objects the local printers know ------------------------
def _ts(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    return _dt.datetime.fromisoformat(text).timestamp()


def _process(d: Mapping[str, Any]) -> ProcessRef | None:
    if d.get("pid") is None:
        return None
    return ProcessRef(int(d["pid"]), float(d.get("create_time") or 0.0), d.get("name") or "",
                      d.get("exe") or "", tuple(d.get("cmdline") or ()), d.get("user") or "",
                      tuple(d.get("parents") or ()))


def state_from_dict(doc: Mapping[str, Any]) -> GuardState:
    devices, usages, seen = [], [], {}
    for d in doc.get("devices", []):
        dev = Device(DeviceKind(d["kind"]), d["id"], d.get("name") or "", d.get("path"),
                     d.get("source") or "")
        devices.append(dev)
        for u in d.get("users", []):
            usage = Usage(dev, _process(u), u.get("note") or "", u.get("via") or "")
            usages.append(usage)
            since = _ts(u.get("since"))
            if since is not None:
                seen[usage.key] = since
    from camguard.core.models import Degraded

    degraded = tuple(Degraded(g["source"], g["reason"]) for g in doc.get("degraded", []))
    return GuardState(tuple(devices), tuple(usages), degraded, seen)


def event_from_dict(d: Mapping[str, Any]) -> MonitorEvent | None:
    kind = d.get("event")
    at = _ts(d.get("timestamp")) or 0.0
    if kind in ("degraded", "recovered"):
        from camguard.core.models import Degraded

        reason = Degraded(str(d.get("source")), str(d.get("reason"))) \
            if kind == "degraded" else None
        return HealthEvent(str(d.get("source")), reason, at)
    if kind not in ("started", "stopped"):
        return None
    device = Device(DeviceKind(d["kind"]), d["device"], d.get("device_name") or "")
    usage = Usage(device, _process(d), d.get("note") or "", d.get("via") or "")
    return UsageEvent(EventType(kind), usage, at, _ts(d.get("since")))


def record_from_dict(d: Mapping[str, Any]) -> SessionRecord:
    return SessionRecord(
        id=int(d.get("id") or 0), kind=DeviceKind(d["kind"]), device_id=d.get("device") or "",
        device_name=d.get("device_name") or "", pid=d.get("pid"),
        create_time=d.get("create_time"), name=d.get("name"), exe=d.get("exe"),
        exe_sha256=d.get("exe_sha256"), user=d.get("user"),
        cmdline=tuple(d.get("cmdline") or ()), parents=tuple(d.get("parents") or ()),
        start=_ts(d.get("start")) or 0.0, end=_ts(d.get("end")), duration=d.get("duration_s"),
        decision=d.get("decision"), decided_by=d.get("decided_by"), note=d.get("note") or "",
        end_reason=d.get("end_reason"), via=d.get("via") or "")


def is_session(entry: Mapping[str, Any]) -> bool:
    return entry.get("kind") in {k.value for k in DeviceKind}


def gap_line(entry: Mapping[str, Any]) -> str:
    start = _ts(entry.get("start"))
    when = _dt.datetime.fromtimestamp(start).strftime("%Y-%m-%d %H:%M:%S") if start else "?"
    label = "GAP" if entry.get("kind") == "gap" else "POLICY"
    return f"{when:<19}  {label:>8}  {literal(str(entry.get('message')), 500)}"


def dump(obj: Any) -> str:
    return json_text(obj, indent=2)


# -- the commands through the service ------------------------------------------------------
def status(client: ServiceClient, args: argparse.Namespace) -> GuardState | int:
    """The caller's view of the service's state; with ``--json`` it is printed here and the
    exit code returned."""
    answer = call(client.status)
    if answer.get("ok") is not True:
        return fail(answer)
    if args.json:
        print(dump({k: v for k, v in answer.items() if k != "ok"}))
        return EXIT_DONE
    return state_from_dict(answer)


def watch(client: ServiceClient, args: argparse.Namespace,
          line_of: Callable[[MonitorEvent], str]) -> int:
    try:
        stream = client.watch()
    except ServiceUnavailable as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    with stream:
        if not args.json:
            print(f"watching through the camguard service at {literal(str(client.path), 200)}"
                  "; Ctrl-C to stop", flush=True)
        for event in stream:
            if event.get("ok") is False:
                return fail(event)
            if args.json:
                line = json_text(event, separators=(",", ":"))
            else:
                ev = event_from_dict(event)
                line = line_of(ev) if ev is not None else other_line(event)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return EXIT_DONE


def other_line(event: Mapping[str, Any]) -> str:
    """A service event that is not a usage or health event (a rule's decision)."""
    what = literal(str(event.get("explanation") or event.get("message") or ""), 500)
    outcome = f" ({event['outcome']})" if event.get("outcome") else ""
    return (f"{event.get('timestamp')} {event.get('event')!s:<7} "
            f"{event.get('kind') or ''!s:<10} {literal(str(event.get('device') or ''), 200)}"
            f"  {what}{outcome}")


def history_entries(client: ServiceClient, filters: Mapping[str, Any]
                    ) -> tuple[list[SessionRecord], list[dict[str, Any]], list[dict[str, Any]]]:
    """(sessions, gap entries, every entry as the service sent it)."""
    answer = call(lambda: client.history(**filters))
    if answer.get("ok") is not True:
        code = fail(answer)
        raise CliError("the service refused the history request", code)
    entries = list(answer.get("entries") or [])
    if answer.get("truncated"):
        print("camguard: warning: the service sent only the newest entries; use --since or "
              "--limit", file=sys.stderr)
    return ([record_from_dict(e) for e in entries if is_session(e)],
            [e for e in entries if not is_session(e)], entries)


def print_blocks(answer: Mapping[str, Any], as_json: bool) -> int:
    if answer.get("ok") is not True:
        return fail(answer)
    if as_json:
        print(dump({k: v for k, v in answer.items() if k != "ok"}))
        return EXIT_DONE
    for kind in answer.get("lifted") or []:
        print(f"{kind}: time is up, switched back on")
    blocks = answer.get("blocks") or []
    if not blocks:
        print("nothing is blocked")
    for b in blocks:
        until = "until you turn it back on" if b.get("until") is None else \
            f"until {b['until']} ({b.get('seconds_left')} s left)"
        print(f"{b['kind']:<10}  off since {b.get('since')}, {until}")
        for step in b.get("how") or []:
            print(f"    {step.get('kind')} {literal(str(step.get('target')), 200)}")
    for p in answer.get("problems") or []:
        print(f"camguard: warning: {literal(str(p), 500)}", file=sys.stderr)
    return EXIT_DONE
