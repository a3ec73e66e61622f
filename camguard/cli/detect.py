"""``status``, ``watch`` and ``devices``: who uses which camera and microphone."""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
from typing import Any

from camguard.app import build_detection
from camguard.cli import remote
from camguard.cli.common import detection_settings
from camguard.core.models import HealthEvent, MonitorEvent, Usage
from camguard.core.serialize import device_dict, event_dict, rfc3339, state_dict
from camguard.core.state import GuardState
from camguard.core.text import json_text, literal


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


def _dump(obj: Any) -> str:
    return json_text(obj, separators=(",", ":"))


def cmd_status(args: argparse.Namespace) -> int:
    client = remote.service_client(args)
    if client is not None:
        got = remote.status(client, args)
        if isinstance(got, int):
            return got
        state = got
    else:
        state = build_detection(detection_settings(args)).look_once()
    if args.json:
        print(json_text(state_dict(state), indent=2))
        return 0
    if not state.devices:
        print("no cameras or microphones found")
    for device in state.devices:
        label = f" ({literal(device.name, 80)})" if device.name else ""
        print(f"{device.kind.value:<10}  {literal(device.id, 200)}{label}")
        users = state.users_of(device)
        if not users:
            print("    idle")
        for usage in users:
            print(f"    {_describe(usage)}")
    for d in state.degraded:
        print(f"degraded: {d.source}: {literal(d.reason, 300)}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
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
    client = remote.service_client(args)
    if client is not None:
        return remote.watch(client, args, _event_line)
    detection = build_detection(detection_settings(args))
    monitor = detection.monitor()
    events: queue.Queue[MonitorEvent | None] = queue.Queue()
    monitor.add_sink(events.put)
    stop = threading.Event()

    def on_term(_signum: int, _frame: object) -> None:
        stop.set()
        events.put(None)

    signal.signal(signal.SIGTERM, on_term)
    monitor.start()
    if not args.json:
        print(_summary(monitor.state), flush=True)
    try:
        while not stop.is_set():
            try:
                ev = events.get(timeout=0.5)
            except queue.Empty:
                continue
            if ev is None:
                break
            line = _dump(event_dict(ev)) if args.json else _event_line(ev)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        monitor.stop()
    return 0


def _summary(state: GuardState) -> str:
    cams = sum(1 for d in state.devices if d.kind.value == "camera")
    mics = len(state.devices) - cams
    return f"watching {cams} camera(s) and {mics} microphone(s); Ctrl-C to stop"


def _describe(usage: Usage) -> str:
    p = usage.process
    note = f" [{literal(usage.note, 200)}]" if usage.note else ""
    if p is None:
        return f"in use by a process camguard cannot see{note}" if not usage.note else \
            literal(usage.note, 200)
    user = f", user {literal(p.user, 64)}" if p.user else ""
    exe = f"  {literal(p.exe, 200)}" if p.exe else ""
    return f"{literal(p.name, 64) or '?'} (pid {p.pid}{user}){exe}{note}"


def _event_line(ev: MonitorEvent) -> str:
    if isinstance(ev, HealthEvent):
        if ev.degraded:
            return f"{rfc3339(ev.at)} degraded {ev.source}: {literal(ev.degraded.reason, 300)}"
        return f"{rfc3339(ev.at)} recovered {ev.source}"
    u = ev.usage
    return (f"{rfc3339(ev.at)} {ev.type.value:<7} {u.device.kind.value:<10} "
            f"{literal(u.device.id, 200)}  {_describe(u)}")
