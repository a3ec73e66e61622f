"""Raw USB access to a camera (issue 11, item 6): a process opening the camera's USB device
node (``/dev/bus/usb/BBB/DDD``) can send it control requests from user space, which is how
the LED-bypass attacks re-flashed webcam firmware. Such an open is its own event
(``via="usb"``; the event log's ``device.raw-usb``, level critical), apart from a use of
``/dev/videoN``.

The node is found from the V4L2 device's sysfs parent: ``/sys/class/video4linux/videoN/
device`` is the USB interface; the USB device above it has ``busnum`` and ``devnum``
(Documentation/ABI/stable/sysfs-bus-usb). :func:`camera_usb_nodes` is that mapping alone,
testable on a sysfs tree made by a test; :class:`RawUsbSource` watches the nodes it names
with the device-node machinery (an inner :class:`ProcfsSource` over those exact paths:
inotify, fanotify as root, /proc).

Known limits: the mapping is read again at each look of this source, so a camera plugged
in later is watched from this source's next look (its nodes' folder's inotify or the
monitor's safety rescan); a program that reads descriptors (``lsusb -v``) opens the node
too and is reported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Mapping

from camguard.core.models import Device, DeviceKind, SourceSnapshot, Usage
from camguard.platform.base import Wake
from camguard.platform.linux.devices import DeviceTable, expand_globs
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

VIA = "usb"
NOTE = ("raw USB access to the camera: a program can send it requests directly, even "
        "change its firmware or LED")
_LEVELS = 4  # USB interface -> device: how far above the V4L2 device to look


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def usb_node_of(video: str, *, sys_root: str = "/sys", dev_root: str = "/dev") -> str | None:
    """The USB device node of the camera behind ``video`` (a ``/dev/videoN`` path), or
    None when it is not a USB camera (or sysfs does not say)."""
    base = os.path.basename(video)
    if not base.startswith("video"):
        return None
    try:
        here = os.path.realpath(f"{sys_root}/class/video4linux/{base}/device", strict=True)
    except OSError:
        return None
    for _ in range(_LEVELS):
        bus, dev = _read_int(f"{here}/busnum"), _read_int(f"{here}/devnum")
        if bus is not None and dev is not None:
            if not (0 < bus < 1000 and 0 < dev < 1000):
                return None
            return f"{dev_root}/bus/usb/{bus:03d}/{dev:03d}"
        parent = os.path.dirname(here)
        if parent == here or not parent.startswith(os.path.realpath(sys_root)):
            return None
        here = parent
    return None


def camera_usb_nodes(videos: Iterable[str], *, sys_root: str = "/sys",
                     dev_root: str = "/dev") -> dict[str, str]:
    """USB device node -> the first camera node behind it (a camera with several video
    nodes has one USB node)."""
    out: dict[str, str] = {}
    for video in videos:
        node = usb_node_of(video, sys_root=sys_root, dev_root=dev_root)
        if node is not None:
            out.setdefault(node, video)
    return out


class RawUsbSource:
    """Who holds the USB device node of a camera the camera globs match."""

    name = "rawusb"

    def __init__(self, camera_globs: Iterable[str], *, describer: ProcessDescriber,
                 sound_server_exes: Collection[str] = (), proc_root: str = "/proc",
                 sys_root: str = "/sys", dev_root: str = "/dev") -> None:
        self._globs = tuple(camera_globs)
        self._describer = describer
        self._sound_servers = tuple(sound_server_exes)
        self._proc, self._sys, self._dev = proc_root, sys_root, dev_root
        self._names = DeviceTable(sys_root=sys_root, proc_root=proc_root)
        self._nodes: dict[str, str] = {}
        self._inner: ProcfsSource | None = None
        self._wake: Wake | None = None

    def _mapping(self) -> dict[str, str]:
        videos = [p for _, p in expand_globs({DeviceKind.CAMERA: self._globs})]
        return camera_usb_nodes(videos, sys_root=self._sys, dev_root=self._dev)

    def _refresh(self) -> ProcfsSource | None:
        """The inner source over the nodes there are now (made again when they change)."""
        nodes = self._mapping()
        if nodes.keys() != self._nodes.keys() or (nodes and self._inner is None):
            if self._inner is not None:
                self._inner.stop()
            self._inner = None if not nodes else ProcfsSource(
                sorted(nodes), (), describer=self._describer,
                sound_server_exes=self._sound_servers, proc_root=self._proc,
                sys_root=self._sys)
            if self._inner is not None and self._wake is not None:
                self._inner.start(self._wake)
        self._nodes = nodes
        return self._inner

    def snapshot(self) -> SourceSnapshot:
        inner = self._refresh()
        if inner is None:
            return SourceSnapshot(self.name)
        got = inner.snapshot()
        # Only a node in use is listed: ``status`` and ``devices`` show no idle USB node
        # next to each camera (the camera is listed already).
        devices = {u.device.id: self._device(u.device) for u in got.usages}
        usages = frozenset(Usage(devices[u.device.id], u.process, note=NOTE, via=VIA)
                           for u in got.usages)
        return SourceSnapshot(self.name, frozenset(devices.values()), usages,
                              degraded=got.degraded, recheck_in=got.recheck_in)

    def _device(self, d: Device) -> Device:
        video = self._nodes.get(d.id, "")
        camera = self._names.device(DeviceKind.CAMERA, video, self.name).name if video else ""
        label = camera or os.path.basename(video) or "a camera"
        return Device(DeviceKind.CAMERA, d.id, name=f"raw USB access to {label}",
                      path=d.path, source=self.name)

    def start(self, wake: Wake) -> None:
        self._wake = wake
        inner = self._refresh()
        if inner is not None:
            inner.start(wake)

    def stop(self) -> None:
        self._wake = None
        if self._inner is not None:
            self._inner.stop()

    def nodes(self) -> Mapping[str, str]:
        """USB node -> camera node, as of the last look (tests, ``status``)."""
        return dict(self._nodes)
