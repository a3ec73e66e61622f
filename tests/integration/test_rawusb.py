"""Raw USB access to a camera (issue 11, item 6): the camera's USB device node found from a
sysfs tree the test makes, and a real process opening a stand-in of that node raising its own
event (``via="usb"``, the event log's critical ``device.raw-usb``), apart from the camera's
``/dev/video*`` node."""

from __future__ import annotations

import json
from pathlib import Path

from camguard.core.clock import FrozenClock
from camguard.core.models import UsageEvent
from camguard.platform.linux.rawusb import NOTE, RawUsbSource, camera_usb_nodes, usb_node_of
from camguard.platform.process import ProcessDescriber
from camguard.store.eventlog import EventLog, JsonLinesFile
from tests.conftest import Holder, make_standin
from tests.realenv import wait_until
from tests.watching import started, stopped, watching

USB_DEV = "devices/pci0000:00/0000:00:14.0/usb1/1-2"


def usb_camera(sys_root: Path, video: str, *, busnum: str = "1", devnum: str = "4",
               usb_dev: str = USB_DEV, name: str = "Stand-in Cam") -> None:
    """What the kernel shows for a UVC camera: the V4L2 device under its USB interface,
    whose parent (the USB device) has busnum and devnum."""
    dev = sys_root / usb_dev
    iface = dev / f"{dev.name}:1.0"
    node = iface / "video4linux" / video
    node.mkdir(parents=True)
    (dev / "busnum").write_text(f"{busnum}\n")
    (dev / "devnum").write_text(f"{devnum}\n")
    (node / "name").write_text(f"{name}\n")
    (node / "device").symlink_to("../..")  # -> the USB interface
    (sys_root / "class" / "video4linux").mkdir(parents=True, exist_ok=True)
    (sys_root / "class" / "video4linux" / video).symlink_to(node)


def test_usb_node_comes_from_the_v4l2_devices_sysfs_parent(tmp_path: Path) -> None:
    sys_root, dev = tmp_path / "sys", tmp_path / "dev"
    usb_camera(sys_root, "video0")
    usb_camera(sys_root, "video1")  # the same camera's metadata node: the same USB device
    usb_camera(sys_root, "video2", busnum="3", devnum="17",
               usb_dev="devices/pci0000:00/0000:00:14.0/usb3/3-1")
    # A camera that is no USB device (a platform camera: no busnum above it).
    platform = sys_root / "devices" / "platform" / "cam" / "video4linux" / "video3"
    platform.mkdir(parents=True)
    (platform / "device").symlink_to("../..")
    (sys_root / "class" / "video4linux" / "video3").symlink_to(platform)
    # Hostile sysfs text is no node.
    usb_camera(sys_root, "video4", devnum="../../etc",
               usb_dev="devices/pci0000:00/0000:00:14.0/usb5/5-1")
    kw = {"sys_root": str(sys_root), "dev_root": str(dev)}
    assert usb_node_of(f"{dev}/video0", **kw) == f"{dev}/bus/usb/001/004"
    assert usb_node_of(f"{dev}/video2", **kw) == f"{dev}/bus/usb/003/017"
    assert usb_node_of(f"{dev}/video3", **kw) is None
    assert usb_node_of(f"{dev}/video4", **kw) is None
    assert usb_node_of(f"{dev}/video9", **kw) is None  # not in sysfs
    assert usb_node_of(f"{dev}/snd/pcmC0D0c", **kw) is None
    videos = [f"{dev}/video{i}" for i in range(5)]
    assert camera_usb_nodes(videos, **kw) == {f"{dev}/bus/usb/001/004": f"{dev}/video0",
                                              f"{dev}/bus/usb/003/017": f"{dev}/video2"}


def test_opening_the_cameras_usb_node_is_its_own_critical_event(
        tmp_path: Path, holders: list[Holder]) -> None:
    sys_root, dev = tmp_path / "sys", tmp_path / "dev"
    usb_camera(sys_root, "video0")
    cam = make_standin(dev / "video0")
    usb = make_standin(dev / "bus" / "usb" / "001" / "004")
    make_standin(dev / "bus" / "usb" / "001" / "005")  # another USB device: not watched
    source = RawUsbSource([f"{dev}/video*"], describer=ProcessDescriber(),
                          sys_root=str(sys_root), dev_root=str(dev))
    events = tmp_path / "events.jsonl"
    log = EventLog(FrozenClock(1_795_331_400.0), [JsonLinesFile(events)], host="h", user="u")
    try:
        with watching([source]) as (monitor, rec):
            monitor.add_sink(log.monitor_sink)
            assert source.nodes() == {str(usb): str(cam)}
            video_user = Holder([cam])  # the camera used as a camera: not this source's
            other = Holder([dev / "bus" / "usb" / "001" / "005"])
            holders.extend([video_user, other])
            raw = Holder([usb])
            holders.append(raw)
            ev = rec.wait_for(started(raw.pid, str(usb)))
            assert isinstance(ev, UsageEvent)
            assert (ev.usage.via, ev.usage.note) == ("usb", NOTE)
            assert ev.usage.device.name == "raw USB access to Stand-in Cam"
            assert ev.usage.device.kind.value == "camera"
            raw.close()
            rec.wait_for(stopped(raw.pid, str(usb)))
            seen = {e.usage.process.pid for e in rec.usage_events() if e.usage.process}
            assert seen == {raw.pid}, rec.usage_events()
    finally:
        log.close()
    records = [json.loads(line) for line in events.read_text().splitlines()]
    [alarm] = [r for r in records if r["type"] == "device.raw-usb"]
    assert (alarm["level"], alarm["device"], alarm["pid"]) == ("critical", str(usb), raw.pid)
    assert "raw USB access to a camera" in alarm["msg"]
    assert [r["type"] for r in records if r.get("pid") == raw.pid] == [
        "device.raw-usb", "device.stopped"]


def test_a_camera_plugged_in_later_is_watched_from_the_next_look(
        tmp_path: Path, holders: list[Holder]) -> None:
    sys_root, dev = tmp_path / "sys", tmp_path / "dev"
    dev.mkdir()
    source = RawUsbSource([f"{dev}/video*"], describer=ProcessDescriber(),
                          sys_root=str(sys_root), dev_root=str(dev))
    with watching([source], rescan_interval=0.3) as (monitor, rec):
        assert source.nodes() == {}
        usb_camera(sys_root, "video0", busnum="2", devnum="9",
                   usb_dev="devices/pci0000:00/0000:00:14.0/usb2/2-4")
        usb = make_standin(dev / "bus" / "usb" / "002" / "009")
        cam = make_standin(dev / "video0")
        wait_until(lambda: source.nodes() == {str(usb): str(cam)}, 20,
                   "the plugged-in camera's USB node to be watched")
        raw = Holder([usb])
        holders.append(raw)
        rec.wait_for(started(raw.pid, str(usb)), timeout=20)
        assert any(d.id == str(usb) for d in monitor.state.devices)
