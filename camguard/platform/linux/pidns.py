"""Pids inside a pid namespace (a Flatpak sandbox's), mapped to the host's.

A process in a sandbox sees its own pids: libpulse writes ``application.process.id = 2``
for an app that is pid 2 in its sandbox, which on the host is another process entirely
(often a kernel thread). ``/proc/PID/status`` says what pid each process has in each pid
namespace it is in (``NSpid:`` host first, innermost last), so the host processes an
inner pid may stand for can be listed; which one is meant is still the stream's claim.
"""

from __future__ import annotations

import os

MAX_PROCS = 1 << 16
_STATUS_READ = 4096


def parse_nspid(status: str) -> tuple[int, ...]:
    """The ``NSpid:`` line of a ``/proc/PID/status`` (host pid first); () when absent."""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            try:
                return tuple(int(x) for x in line[6:].split())
            except ValueError:
                return ()
    return ()


def nspids(pid: int, proc_root: str = "/proc") -> tuple[int, ...]:
    try:
        with open(f"{proc_root}/{pid}/status", "rb") as f:
            return parse_nspid(f.read(_STATUS_READ).decode("ascii", "replace"))
    except (OSError, ValueError):
        return ()


def host_pids_for(inner: int, proc_root: str = "/proc") -> list[int]:
    """Host pids of the processes that are pid ``inner`` in a pid namespace of their own
    (NSpid with two or more entries, the innermost ``inner``); a process of the host's
    namespace never counts."""
    out: list[int] = []
    try:
        names = os.listdir(proc_root)
    except OSError:
        return out
    for name in names[:MAX_PROCS]:
        if not name.isdigit():
            continue
        ids = nspids(int(name), proc_root)
        if len(ids) >= 2 and ids[-1] == inner and ids[0] == int(name):
            out.append(int(name))
    return out
