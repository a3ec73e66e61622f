"""The processes of one Flatpak sandbox, so that ending the app ends the app, not one of
its processes (or ``bwrap`` alone, leaving the app running).

flatpak runs an app as ``bwrap`` (outside) → ``bwrap`` (pid 1 of the sandbox's pid
namespace) → the app and its helpers, all in the systemd scope
``app-flatpak-<app id>-<n>.scope``, the sandbox's processes seeing ``/.flatpak-info`` in
their root. The sandbox is found from the process camguard was asked to end: the topmost
ancestor that is in the same sandbox (same app id, by :func:`sandbox_origin`), or the
process itself when it is the ``bwrap`` that started it; its members are that root and
every process below it. Nothing above the root and nothing outside its tree is ever
included, and every member is named by ``(pid, create_time)``, checked again before it is
signalled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from camguard.core.origin import OriginKind
from camguard.platform.linux.sandbox import sandbox_origin

MAX_MEMBERS = 512
MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Sandbox:
    app: str  # the Flatpak app id
    root: tuple[int, float]  # the topmost process of the sandbox (pid, create_time)
    members: tuple[tuple[int, float], ...]  # root first, then every process below it


def _flatpak_id(pid: int, proc_root: str) -> str | None:
    o = sandbox_origin(pid, "", proc_root)
    return o.name if o is not None and o.kind is OriginKind.FLATPAK and o.name else None


def _is_bwrap(proc: psutil.Process) -> bool:
    try:
        return os.path.basename(proc.exe()) == "bwrap"
    except (psutil.Error, OSError):
        return False


def sandbox_of(pid: int, proc_root: str = "/proc") -> Sandbox | None:
    """The Flatpak sandbox ``pid`` is part of (or the ``bwrap`` that starts one), with its
    processes; None when it is in none (or is gone)."""
    try:
        proc = psutil.Process(pid)
        app = _flatpak_id(pid, proc_root)
        root = proc
        if app is None:
            if not _is_bwrap(proc):
                return None
            app = next((a for c in proc.children(recursive=True)[:MAX_MEMBERS]
                        if (a := _flatpak_id(c.pid, proc_root)) is not None), None)
            if app is None:
                return None
        else:
            for _ in range(MAX_DEPTH):
                parent = root.parent()
                if parent is None or parent.pid <= 1 \
                        or _flatpak_id(parent.pid, proc_root) != app:
                    break
                root = parent
            parent = root.parent()
            if parent is not None and parent.pid > 1 and _is_bwrap(parent) \
                    and _flatpak_id(parent.pid, proc_root) is None:
                root = parent  # the outer bwrap, in no scope of its own: the sandbox too
        members = [(root.pid, root.create_time())]
        for child in root.children(recursive=True)[:MAX_MEMBERS]:
            try:
                members.append((child.pid, child.create_time()))
            except psutil.Error:
                continue  # it exited while we looked
    except (psutil.Error, OSError, ValueError):
        return None
    return Sandbox(app, members[0], tuple(members))
