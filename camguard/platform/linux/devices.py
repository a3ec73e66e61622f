"""Which device nodes exist, what kind they are, and what they are called (sysfs, procfs)."""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterable, Mapping

from camguard.core.models import Device, DeviceKind

_PCM = re.compile(r"^pcmC(\d+)D(\d+)([cp])$")


def expand_globs(globs: Mapping[DeviceKind, Iterable[str]]) -> list[tuple[DeviceKind, str]]:
    """Every existing path the globs match, camera globs first; a path is listed once."""
    seen: set[str] = set()
    out: list[tuple[DeviceKind, str]] = []
    for kind in (DeviceKind.CAMERA, DeviceKind.MICROPHONE):
        for pattern in globs.get(kind, ()):
            for path in sorted(glob.glob(pattern)):
                if path not in seen and not os.path.isdir(path):
                    seen.add(path)
                    out.append((kind, path))
    return out


def watch_dirs(globs: Mapping[DeviceKind, Iterable[str]]) -> set[str]:
    """Folders to watch for hot-plug: the deepest existing folder above each glob.

    For ``/dev/snd/pcmC*D*c`` on a machine without sound that is ``/dev``, so the creation
    of ``/dev/snd`` itself is noticed and the watch moves down.
    """
    dirs: set[str] = set()
    for patterns in globs.values():
        for pattern in patterns:
            parts = pattern.split("/")
            fixed: list[str] = []
            for part in parts[:-1]:
                if glob.has_magic(part):
                    break
                fixed.append(part)
            d = "/".join(fixed) or "/"
            while not os.path.isdir(d) and d not in ("", "/"):
                d = os.path.dirname(d)
            dirs.add(d or "/")
    return dirs


class DeviceTable:
    """Human names and device numbers for nodes, cached by (path, rdev)."""

    def __init__(self, sys_root: str = "/sys", proc_root: str = "/proc") -> None:
        self._sys = sys_root
        self._proc = proc_root
        self._names: dict[tuple[str, int], str] = {}

    def device(self, kind: DeviceKind, path: str, source: str) -> Device:
        rdev = _rdev(path)
        key = (path, rdev)
        name = self._names.get(key)
        if name is None:
            name = self._name(path)
            if len(self._names) > 1024:
                self._names.clear()
            self._names[key] = name
        return Device(kind, path, name=name, path=path, source=source)

    def rdevs(self, paths: Iterable[str]) -> dict[str, int]:
        out = {}
        for p in paths:
            rdev = _rdev(p)
            if rdev:
                out[p] = rdev
        return out

    def _name(self, path: str) -> str:
        base = os.path.basename(path)
        if base.startswith("video"):
            # Documentation/ABI/stable/sysfs-class-video4linux? (drivers/media/v4l2-core:
            # v4l2-dev.c exposes "name" for every video device).
            return _read_line(f"{self._sys}/class/video4linux/{base}/name")
        m = _PCM.match(base)
        if m:
            card, dev, direction = m.groups()
            # sound/core/pcm.c: /proc/asound/cardN/pcmDc/info carries "name: ..."
            info = _read(f"{self._proc}/asound/card{card}/pcm{dev}{direction}/info")
            for line in info.splitlines():
                if line.startswith("name:"):
                    return line.partition(":")[2].strip()
            return _read_line(f"{self._proc}/asound/card{card}/id")
        return ""


def _rdev(path: str) -> int:
    try:
        st = os.stat(path)
    except OSError:
        return 0
    return st.st_rdev if stat.S_ISCHR(st.st_mode) else 0


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(4096)
    except OSError:
        return ""


def _read_line(path: str) -> str:
    return _read(path).strip().splitlines()[0] if _read(path).strip() else ""
