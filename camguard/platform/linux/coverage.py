"""What the device-node and sound-server sources can see here, for ``"coverage"``.

Kept apart from procfs.py and pulse.py: only the sources' public state is read."""

from __future__ import annotations

import os
from collections.abc import Mapping

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import DeviceKind, SourceSnapshot


def procfs_coverage(name: str, globs: Mapping[DeviceKind, tuple[str, ...]],
                    last: SourceSnapshot | None, *, fanotify_active: bool | None) -> list[Coverage]:
    """Device nodes: watching as root (fanotify names every opener, even a brief one);
    partial otherwise. ``fanotify_active``: the running watcher's answer, None when not
    started (a one-shot look, where root is what decides)."""
    out = []
    root = os.geteuid() == 0
    active = root if fanotify_active is None else fanotify_active
    for kind in (DeviceKind.CAMERA, DeviceKind.MICROPHONE):
        if not globs.get(kind):
            out.append(Coverage(kind.value, name, CoverageState.BLIND,
                                "no device nodes configured (empty glob list)"))
            continue
        if last is not None and last.degraded is not None:
            out.append(Coverage(kind.value, name, CoverageState.PARTIAL, last.degraded.reason))
        elif not root:
            out.append(Coverage(kind.value, name, CoverageState.PARTIAL,
                                "fanotify unavailable: not root (another account's process "
                                "holding a node is counted but not named; an open shorter "
                                "than one look can be missed)"))
        elif not active:
            out.append(Coverage(kind.value, name, CoverageState.PARTIAL,
                                "fanotify unavailable (an open shorter than one look can be "
                                "missed)"))
        else:
            out.append(Coverage(kind.value, name, CoverageState.WATCHING,
                                "device nodes: inotify, fanotify and /proc"))
    return out


def pulse_coverage(name: str, last: SourceSnapshot | None) -> list[Coverage]:
    if last is not None and last.degraded is not None:
        return [Coverage("microphone", name, CoverageState.BLIND, last.degraded.reason)]
    return [Coverage("microphone", name, CoverageState.WATCHING,
                     "recording streams on the sound server are named")]
