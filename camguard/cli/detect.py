"""``status``, ``watch`` and ``devices``: who uses which camera and microphone."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from camguard.app.guard_error import GuardError
from camguard.cli import remote
from camguard.cli.common import detection_settings
from camguard.core.text import json_text, literal

if TYPE_CHECKING:  # the models are imported where used: ``status --json`` prints the
    # document as the Guard gives it (the service's as it came) and needs none (issue 16)
    from camguard.core.models import Device, MonitorEvent, Usage
    from camguard.core.origin import ExeOrigin


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="who uses each device right now")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("watch", parents=[common],
                       help="print a line for every device session that starts or stops")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_watch)
    p = sub.add_parser("devices", parents=[common], help="list cameras and microphones")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_devices)


def _own_look(args: argparse.Namespace) -> bool:
    """Options that make this command's look differ from the running tray's."""
    return any(getattr(args, name, None) for name in ("camera_glob", "mic_glob", "config"))


def _dump(obj: Any) -> str:
    return json_text(obj, separators=(",", ":"))


def cmd_status(args: argparse.Namespace) -> int:
    answer = None
    if not _own_look(args) and remote.no_service(args):
        from camguard.cli.tray_status import tray_answer, tray_status

        doc = tray_status()  # this account's running tray answers, if one runs: both
        if doc is not None and args.json:  # forms print what it knows (issue 16)
            print(json_text(doc, indent=2))
            return 0
        answer = None if doc is None else tray_answer(doc)
    try:
        if answer is None and args.json:  # the service's is printed as it came (issue 16)
            print(json_text(remote.guard(args).status_doc(), indent=2))
            return 0
        if answer is None:
            answer = remote.guard(args).status()
    except GuardError as exc:
        return remote.refusal(exc)
    from camguard.core.origin import origin_line

    state = answer.state
    if not state.devices:
        print("no cameras or microphones found")
    origins = _origins(answer.doc)
    for device in state.devices:
        label = f" ({literal(device.name, 80)})" if device.name else ""
        print(f"{device.kind.value:<10}  {literal(device.id, 200)}{label}")
        users = state.users_of(device)
        if not users:
            print("    idle")
        for usage in users:
            origin = None if usage.process is None else origins.get(usage.process.pid)
            print(f"    {_describe(usage)}" + (f"\n      {origin_line(origin)}" if origin
                                               else ""))
        held = held_line(device, users)
        if held:
            print(f"    {held}")
    for d in state.degraded:
        print(f"degraded: {d.source}: {literal(d.reason, 300)}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from camguard.app.detection import build_detection
    from camguard.core.serialize import device_dict

    state = build_detection(detection_settings(args)).look_once()
    if args.json:
        print(json_text({"devices": [device_dict(d) for d in state.devices],
                         "degraded": [{"source": d.source, "reason": d.reason}
                                      for d in state.degraded]},
                        indent=2))
        return 0
    if not state.devices:
        print("no cameras or microphones found")
    for device in state.devices:
        label = f"  {literal(device.name, 80)}" if device.name else ""
        print(f"{device.kind.value:<10}  {literal(device.id, 200)}{label}")
    for d in state.degraded:
        print(f"degraded: {d.source}: {literal(d.reason, 300)}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    guard = remote.guard(args)
    try:
        watching = guard.watch()
    except GuardError as exc:
        return remote.refusal(exc)
    try:
        if not args.json:
            print(watching.banner, flush=True)
        for item in watching:
            if args.json:
                line = _dump(item.doc)
            elif item.event is not None:
                line = _event_line(item.event)
            else:
                line = remote.other_line(item.doc)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except GuardError as exc:
        return remote.refusal(exc)
    except KeyboardInterrupt:
        pass
    finally:
        watching.close()
    return 0


def _origins(doc: Any) -> dict[int, ExeOrigin]:
    """pid -> where its executable comes from, as the status answer says."""
    from camguard.core.origin import origin_from_dict

    out: dict[int, ExeOrigin] = {}
    for device in doc.get("devices") or () if isinstance(doc, dict) else ():
        for user in device.get("users") or () if isinstance(device, dict) else ():
            origin = origin_from_dict(user.get("origin")) if isinstance(user, dict) else None
            if origin is not None and isinstance(user.get("pid"), int):
                out[user["pid"]] = origin
    return out


def _describe(usage: Usage) -> str:
    p = usage.process
    note = f" [{literal(usage.note, 200)}]" if usage.note else ""
    if p is None:
        return f"in use by a process camguard cannot see{note}" if not usage.note else \
            literal(usage.note, 200)
    user = f", user {literal(p.user, 64)}" if p.user else ""
    exe = f"  {literal(p.exe, 200)}" if p.exe else ""
    if p.script:
        exe += f" running {literal(p.script, 200)}"
    return f"{literal(p.name, 64) or '?'} (pid {p.pid}{user}){exe}{note}"


def held_line(device: Device, users: list[Usage]) -> str:
    """For a device node PipeWire holds on behalf of apps: "held by PipeWire for: ..." (the
    media server's own fd is no use of its own; the apps linked to its node are)."""
    brokered = [u for u in users if u.via == "pipewire"]
    if not brokered or not device.path:
        return ""
    apps = ", ".join(f"{literal(u.process.name, 64) or '?'} ({u.process.pid})"
                     if u.process else "an unseen client" for u in brokered)
    return f"held by PipeWire for: {apps}"


def _event_line(ev: MonitorEvent) -> str:
    from camguard.core.models import HealthEvent
    from camguard.core.serialize import rfc3339

    if isinstance(ev, HealthEvent):
        if ev.degraded:
            return f"{rfc3339(ev.at)} degraded {ev.source}: {literal(ev.degraded.reason, 300)}"
        return f"{rfc3339(ev.at)} recovered {ev.source}"
    u = ev.usage
    return (f"{rfc3339(ev.at)} {ev.type.value:<7} {u.device.kind.value:<10} "
            f"{literal(u.device.id, 200)}  {_describe(u)}")
