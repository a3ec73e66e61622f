"""USB unbind and the udev rule through the Linux blocker and the in-process helper, for real:
stand-in nodes, a tmp tree shaped like /sys (this machine has no USB camera), and udev
reloads run through an executable put where the helper looks for ``udevadm``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from camguard.core.blocks import BlockOptions, Outcome, StepKind, UndoStep
from camguard.core.models import DeviceKind
from camguard.platform.linux import helper
from camguard.platform.linux.block import LinuxBlocker
from camguard.platform.linux.helper_runner import InProcessHelper
from camguard.platform.linux.kill import Killer
from tests.conftest import make_standin, need_root

pytestmark = pytest.mark.real

IFACE = "1-2:1.0"
USB = BlockOptions(unbind_usb=True)
RULE = BlockOptions(persistent=True)
# Records its arguments, one call a line; exits with $UDEVADM_EXIT's code (0 if unset).
RECORDER = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
echo "udevadm says no" >&2
exit {code}
"""


def usb_sysfs(sys_root: Path, node: str = "video0", iface: str = IFACE,
              driver: str = "uvcvideo") -> Path:
    """/sys/class/video4linux/NODE/device -> a USB interface bound to ``driver``."""
    drivers = sys_root / "bus" / "usb" / "drivers"
    uvc = drivers / "uvcvideo"
    uvc.mkdir(parents=True, exist_ok=True)
    for name in ("bind", "unbind"):
        (uvc / name).touch()
    (drivers / driver).mkdir(exist_ok=True)
    dev = sys_root / "devices" / "pci0000:00" / "usb1" / "1-2" / iface
    dev.mkdir(parents=True)
    (dev / "driver").symlink_to(drivers / driver)
    (sys_root / "bus" / "usb" / "devices").mkdir(parents=True, exist_ok=True)
    (sys_root / "bus" / "usb" / "devices" / iface).symlink_to(dev)
    v4l = sys_root / "class" / "video4linux" / node
    v4l.mkdir(parents=True)
    (v4l / "device").symlink_to(dev)
    return uvc


def udevadm(tmp_path: Path, code: int = 0) -> Path:
    d = tmp_path / "udevadm-bin"
    d.mkdir(exist_ok=True)
    exe = d / "udevadm"
    exe.write_text(RECORDER.format(code=code))
    exe.chmod(0o755)
    return exe


def blocker(devdir: Path, tmp_path: Path, *, helper_on: bool = True,
            udevadm_at: Sequence[str] = (), rules: Path | None = None) -> LinuxBlocker:
    cams, mics = (str(devdir / "video*"),), (str(devdir / "snd" / "pcmC*D*c"),)
    rules_dir = str(rules or tmp_path / "rules.d")
    runner = InProcessHelper((*cams, *mics), str(tmp_path / "helper" / "nodes.json"),
                             rules_dir=rules_dir, run_udevadm=bool(udevadm_at),
                             sys_root=str(tmp_path / "sys"), udevadm_candidates=udevadm_at)
    return LinuxBlocker(cams, mics, killer=Killer(), helper=runner if helper_on else None,
                        sys_root=str(tmp_path / "sys"), rules_dir=rules_dir)


@pytest.fixture
def cam(devdir: Path) -> Path:
    need_root()
    return make_standin(devdir / "video0")


def test_usb_unbind_through_the_blocker_and_bind_on_undo(cam: Path, devdir: Path,
                                                         tmp_path: Path) -> None:
    uvc = usb_sysfs(tmp_path / "sys")
    b = blocker(devdir, tmp_path)
    applied = b.apply(DeviceKind.CAMERA, USB)
    assert applied.result.outcome is Outcome.DONE, applied.result.message
    assert f"USB interface {IFACE} unbound from uvcvideo" in applied.result.message
    assert (uvc / "unbind").read_text() == IFACE
    assert [s.kind for s in applied.steps] == [StepKind.NODE, StepKind.USB]
    assert applied.steps[1].target == IFACE
    # Applied again while the block lasts: the interface recorded as unbound is left alone.
    (uvc / "unbind").write_text("")
    again = b.apply(DeviceKind.CAMERA, USB, applied.steps)
    assert again.result.ok and (uvc / "unbind").read_text() == ""
    assert StepKind.USB not in [s.kind for s in again.steps]
    undone = b.undo(DeviceKind.CAMERA, applied.steps)
    assert undone.outcome is Outcome.DONE, undone.message
    assert (uvc / "bind").read_text() == IFACE
    assert f"{IFACE} restored" in undone.message


def test_an_interface_not_bound_to_uvcvideo_is_not_unbound(cam: Path, devdir: Path,
                                                          tmp_path: Path) -> None:
    uvc = usb_sysfs(tmp_path / "sys", driver="usb-storage")
    applied = blocker(devdir, tmp_path).apply(DeviceKind.CAMERA, USB)
    assert applied.result.outcome is Outcome.NOT_FOUND
    assert applied.result.message == (f"USB interface {IFACE} not unbound: the interface is "
                                       "not bound to uvcvideo (the rest is switched off)")
    assert [s.kind for s in applied.steps] == [StepKind.NODE]
    assert (uvc / "unbind").read_text() == ""


def test_an_interface_unplugged_during_the_block_has_nothing_to_restore(
        cam: Path, devdir: Path, tmp_path: Path) -> None:
    usb_sysfs(tmp_path / "sys")
    b = blocker(devdir, tmp_path)
    applied = b.apply(DeviceKind.CAMERA, USB)
    assert applied.result.ok, applied.result.message
    (tmp_path / "sys" / "bus" / "usb" / "devices" / IFACE).unlink()
    undone = b.undo(DeviceKind.CAMERA, applied.steps)
    assert undone.outcome is Outcome.DONE, undone.message
    assert f"{IFACE}: no such USB interface (nothing to restore)" in undone.details


def test_a_persistent_block_reloads_udev(cam: Path, devdir: Path, tmp_path: Path) -> None:
    exe = udevadm(tmp_path)
    b = blocker(devdir, tmp_path, udevadm_at=["/nonexistent/udevadm", str(exe)])
    applied = b.apply(DeviceKind.CAMERA, RULE)
    assert applied.result.outcome is Outcome.DONE, applied.result.message
    assert "udev rule installed" in applied.result.message
    assert "not reloaded" not in applied.result.message
    rule = tmp_path / "rules.d" / helper.UDEV_RULE_NAME
    assert rule.read_text() == helper.UDEV_RULE
    calls = exe.parent / "calls"
    assert calls.read_text().splitlines() == ["control --reload", "trigger -s video4linux"]
    assert b.undo(DeviceKind.CAMERA, applied.steps).ok
    assert not rule.exists()
    assert calls.read_text().splitlines()[2:] == ["control --reload", "trigger -s video4linux"]


@pytest.mark.parametrize(("make", "note"), [
    (lambda tmp: [str(udevadm(tmp, code=1))],
     "udev not reloaded (control: udevadm says no; trigger: udevadm says no)"),
    (lambda tmp: [], "udevadm not found: the rule applies from the next device event or "
                     "reboot"),
])
def test_udev_reload_problems_are_said_not_hidden(
        tmp_path: Path, devdir: Path, make: object, note: str) -> None:
    need_root()
    ctx = helper.Context(state_file=str(tmp_path / "h" / "s.json"),
                         rules_dir=str(tmp_path / "rules.d"),
                         udevadm_candidates=tuple(make(tmp_path)))  # type: ignore[operator]
    code, out = helper.run(["install-udev-rule"], ctx)
    assert code == helper.OK
    assert out["reloaded"] is False and out["note"] == note
    code, out = helper.run(["remove-udev-rule"], ctx)
    assert code == helper.OK and out["note"] == note


def test_udevadm_that_cannot_run_is_a_problem_too(tmp_path: Path) -> None:
    need_root()
    not_exe = tmp_path / "udevadm"
    not_exe.write_text("not a program")
    ctx = helper.Context(state_file=str(tmp_path / "h" / "s.json"),
                         rules_dir=str(tmp_path / "rules.d"), udevadm_candidates=(str(not_exe),))
    code, out = helper.run(["install-udev-rule"], ctx)
    assert code == helper.OK and out["reloaded"] is False
    assert str(out["note"]).startswith("udev not reloaded (control: [Errno 13] Permission denied")


def test_a_rule_that_cannot_be_written_fails_the_block_but_keeps_the_rest(
        cam: Path, devdir: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules-is-a-file"
    rules.write_text("")
    applied = blocker(devdir, tmp_path, rules=rules).apply(DeviceKind.CAMERA, RULE)
    assert applied.result.outcome is Outcome.FAILED
    assert applied.result.message.startswith("udev rule not installed: ")
    assert applied.result.message.endswith("(the rest is switched off)")
    assert [s.kind for s in applied.steps] == [StepKind.NODE]


def test_undo_without_the_helper_says_how_to_restore_by_hand(cam: Path, devdir: Path,
                                                             tmp_path: Path) -> None:
    os.chown(cam, 0, 44)
    applied = blocker(devdir, tmp_path).apply(DeviceKind.CAMERA, BlockOptions())
    assert applied.result.ok, applied.result.message
    undone = blocker(devdir, tmp_path, helper_on=False).undo(DeviceKind.CAMERA, applied.steps)
    assert undone.outcome is Outcome.REFUSED
    assert f"(by hand: chown 0:44 {cam} && chmod 0666 {cam})" in undone.message
    mute = UndoStep(StepKind.MIC_MUTE, data="{}")
    r = blocker(devdir, tmp_path).undo(DeviceKind.MICROPHONE, [mute])
    assert r.outcome is Outcome.FAILED
    assert r.message == "cannot unmute: muting at the sound server is not available"
