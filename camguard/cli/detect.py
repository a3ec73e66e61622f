"""``status``, ``watch`` and ``devices``: who uses which camera and microphone."""

from __future__ import annotations

import argparse
import queue
import signal
import sqlite3
import sys
import threading
from typing import Any

from camguard.app import build_detection
from camguard.cli import remote
from camguard.cli.common import detection_settings
from camguard.core.models import UNSEEN_PROCESS_NOTE, HealthEvent, MonitorEvent, Usage
from camguard.core.serialize import device_dict, event_dict, rfc3339, state_dict
from camguard.core.state import GuardState
from camguard.core.text import json_text, literal
from camguard.platform.clock import SystemClock
from camguard.store.db import default_path
from camguard.store.history import HistoryStore


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
        state = _with_live_history(build_detection(detection_settings(args)).look_once())
    state = _with_since(state)
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


# The local tray records every session, a process-less one too, and beats at least every
# 60 s (ui/shell.py HEARTBEAT_MS): a history whose last beat is older than this has no live
# recorder behind it, and its open sessions may have ended since.
LIVE_BEAT = 180.0


def _with_live_history(state: GuardState) -> GuardState:
    """What a running camguard of this user (the tray) knows that one look cannot.

    Without privileges a look cannot read another account's fd table, and an fd opened
    before the look leaves no trace to see: only a watcher that was running at the open
    knows (inotify, then a /proc re-check; platform/linux/hidden.py). Its open sessions
    in the history, while it still beats, bring that in use "by a process camguard cannot
    see", and tell since when each use really runs."""
    path = default_path()
    if not path.exists():
        return state
    clock = SystemClock()
    now = clock.now()
    try:
        store = HistoryStore(path, clock, hash_exes=False)
    except (OSError, sqlite3.Error):
        return state  # unreadable or locked: this look alone
    try:
        beat = store.last_heartbeat()
        if beat is None or now - beat > LIVE_BEAT:
            return state
        open_sessions = [r for r in store.sessions(since=now) if r.is_open]
    except sqlite3.Error:
        return state
    finally:
        store.close()
    devices = {d.id: d for d in state.devices}
    usages = list(state.usages)
    seen = dict(state.first_seen)
    held = {u.device.id for u in usages}
    for r in sorted(open_sessions, key=lambda r: r.start):
        device = devices.get(r.device_id)
        if device is None:
            continue  # unplugged since
        if r.pid is None:
            if r.device_id in held:
                continue  # a look names who holds it now
            usage = Usage(device, None, note=UNSEEN_PROCESS_NOTE, via=r.via or "inotify")
            usages.append(usage)
            held.add(r.device_id)
            seen.setdefault(usage.key, r.start)
        else:
            for u in usages:
                if u.process is not None and u.key == (device.kind.value, device.id, r.pid,
                                                       r.create_time):
                    seen.setdefault(u.key, r.start)
    return GuardState(state.devices, tuple(usages), state.degraded, seen)


def _with_since(state: GuardState) -> GuardState:
    """Fill in when each use started, as far as camguard can know: when a watcher first
    saw it; otherwise when its process started (an fd's open time is not in /proc, so the
    process start is the earliest the use can have begun)."""
    seen = dict(state.first_seen)
    for u in state.usages:
        if u.key not in seen and u.process is not None and u.process.create_time > 0:
            seen[u.key] = u.process.create_time
    return GuardState(state.devices, state.usages, state.degraded, seen)


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
