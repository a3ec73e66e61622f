"""Which sandbox a process runs in: Flatpak, Snap or an AppImage, read from ``/proc``.

- Flatpak: ``flatpak run`` puts the app in a systemd scope named
  ``app-flatpak-<app id>-<n>.scope`` and writes ``/.flatpak-info`` (an ini file: the app id
  and branch) into the sandbox's root, which ``/proc/PID/root`` shows from outside.
- Snap: snapd runs an app in ``snap.<snap name>.<app>-<uuid>.scope`` (older snapd:
  ``snap.<name>.<app>.<uuid>.scope``), from ``/snap/<name>/<revision>/``, a read-only
  squashfs only root mounts.
- AppImage: the type-2 runtime mounts the image at ``/tmp/.mount_<name><random>`` and sets
  ``APPIMAGE`` (the image's path) in the app's environment.

A process outside any sandbox can name its own systemd scope or set ``SNAP_NAME``, so none of
this is proof: only a snap binary on its ``/snap/<name>/`` image counts as verified. The parse
functions are pure (tested on recorded real data); the readers never raise.
"""

from __future__ import annotations

import configparser
import os
import re

from camguard.core.origin import ExeOrigin, OriginKind

MAX_READ = 1 << 16
_FLATPAK_SCOPE = re.compile(r"app-flatpak-(?P<app>[A-Za-z0-9_.\-]+?)-(?P<n>[0-9]+)\.scope")
_SNAP_SCOPE = re.compile(r"snap\.(?P<snap>[a-z0-9][a-z0-9+\-]*?(?:_[a-z0-9]+)?)\."
                         r"(?P<app>[A-Za-z0-9\-]+?)[.\-][0-9a-f\-]{8,}\.scope|"
                         r"snap\.(?P<hook>[a-z0-9][a-z0-9+\-]*)\.hook\.[a-z0-9\-]+-"
                         r"[0-9a-f\-]{8,}\.scope")
_SNAP_EXE = re.compile(r"/snap/(?P<snap>[a-z0-9][a-z0-9+\-]*(?:_[a-z0-9]+)?)/"
                       r"(?:[0-9]+|x[0-9]+|current)/")
# Where the AppImage runtime mounts an image (a pattern to recognise, not a file we make).
_APPIMAGE_MOUNT = re.compile(r"/tmp/\.mount_[^/]+/")  # noqa: S108


def cgroup_leaf(text: str) -> str:
    """The last component of the process's cgroup (v2's ``0::`` line, else the systemd
    v1 hierarchy)."""
    found = ""
    for line in text.splitlines():
        hierarchy, _sep, rest = line.partition(":")
        controllers, _sep, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            return path.rstrip("/").rpartition("/")[2]
        if controllers == "name=systemd":
            found = path.rstrip("/").rpartition("/")[2]
    return found


def flatpak_from_cgroup(text: str) -> str | None:
    """The Flatpak app id named by a ``/proc/PID/cgroup``, or None."""
    m = _FLATPAK_SCOPE.fullmatch(cgroup_leaf(text))
    return m.group("app") if m else None


def snap_from_cgroup(text: str) -> str | None:
    """The snap name named by a ``/proc/PID/cgroup``, or None."""
    m = _SNAP_SCOPE.fullmatch(cgroup_leaf(text))
    if m is None:
        return None
    return m.group("snap") or m.group("hook")


def parse_flatpak_info(text: str) -> tuple[str, str] | None:
    """(app id, branch) from a ``.flatpak-info`` file; None when it names no app."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    for section, key in (("Application", "name"), ("Runtime", "runtime")):
        if parser.has_option(section, key):
            value = parser.get(section, key).strip()
            if section == "Runtime":  # a runtime alone: runtime/<id>/<arch>/<branch>
                parts = value.split("/")
                return (parts[1], parts[3]) if len(parts) == 4 else None
            branch = parser.get("Instance", "branch", fallback="").strip()
            return (value, branch) if value else None
    return None


def snap_from_exe(exe: str) -> str | None:
    m = _SNAP_EXE.match(exe)
    return m.group("snap") if m else None


def appimage_from(exe: str, environ: dict[str, str]) -> str | None:
    """The AppImage's path for a process running from an AppImage mount, or None."""
    if not _APPIMAGE_MOUNT.match(exe):
        return None
    image = environ.get("APPIMAGE", "")
    return image if image.startswith("/") else exe.split("/", 3)[2]


def parse_environ(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key in (b"APPIMAGE", b"SNAP_NAME", b"FLATPAK_ID"):
            out[key.decode("ascii", "replace")] = os.fsdecode(value)
    return out


# -- readers ----------------------------------------------------------------------------------
def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None
    try:
        return os.read(fd, MAX_READ)
    except OSError:
        return None
    finally:
        os.close(fd)


def sandbox_origin(pid: int | None, exe: str, proc_root: str = "/proc") -> ExeOrigin | None:
    """The Flatpak, Snap or AppImage the process runs as, or None for none of them."""
    cgroup = ""
    environ: dict[str, str] = {}
    if pid is not None:
        raw = _read(f"{proc_root}/{pid}/cgroup")
        cgroup = os.fsdecode(raw) if raw else ""
    app = flatpak_from_cgroup(cgroup) if cgroup else None
    info = None
    if pid is not None:
        raw = _read(f"{proc_root}/{pid}/root/.flatpak-info")
        info = parse_flatpak_info(raw.decode("utf-8", "replace")) if raw else None
    if app is not None or info is not None:
        name = info[0] if info else app or ""
        branch = info[1] if info else ""
        why = ""
        if app is not None and info is not None and app != info[0]:
            why = f"its cgroup says {app}, its .flatpak-info {info[0]}"
        return ExeOrigin(OriginKind.FLATPAK, name, False if why else None, branch, why)
    snap = snap_from_cgroup(cgroup) if cgroup else None
    on_image = snap_from_exe(exe)
    if snap is not None or on_image is not None:
        name = snap or on_image or ""
        verified = True if on_image == name else None
        return ExeOrigin(OriginKind.SNAP, name, verified)
    if pid is not None and _APPIMAGE_MOUNT.match(exe):
        raw = _read(f"{proc_root}/{pid}/environ")
        environ = parse_environ(raw) if raw else {}
    image = appimage_from(exe, environ)
    if image is not None:
        return ExeOrigin(OriginKind.APPIMAGE, image, None)
    return None
