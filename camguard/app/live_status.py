"""What ``camguard status`` adds to one look: a running tray's knowledge and start times.

Without privileges one look cannot see another account's fd opened before it; the tray of
this user, which was watching at the open, recorded it in the history (issue 17). Built in
app/ because it opens the history store (only app/ constructs long-lived objects).
"""

from __future__ import annotations

import logging
import sqlite3

from camguard.core.models import UNSEEN_PROCESS_NOTE, Usage
from camguard.core.state import GuardState
from camguard.platform.clock import SystemClock
from camguard.store.db import default_path
from camguard.store.history import HistoryStore

log = logging.getLogger(__name__)

# The local tray records every session, a process-less one too, and beats at least every
# 60 s (ui/shell.py HEARTBEAT_MS): a history whose last beat is older than this has no live
# recorder behind it, and its open sessions may have ended since.
LIVE_BEAT = 180.0


def with_live_history(state: GuardState) -> GuardState:
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
    if store.warning:
        log.warning("history: %s", store.warning)
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


def with_since(state: GuardState) -> GuardState:
    """Fill in when each use started, as far as camguard can know: when a watcher first
    saw it; otherwise when its process started (an fd's open time is not in /proc, so the
    process start is the earliest the use can have begun)."""
    seen = dict(state.first_seen)
    for u in state.usages:
        if u.key not in seen and u.process is not None and u.process.create_time > 0:
            seen[u.key] = u.process.create_time
    return GuardState(state.devices, state.usages, state.degraded, seen)
