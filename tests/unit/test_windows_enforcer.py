"""The Windows kill switch (platform/windows/enforcer.py) under the real BlockManager and the
real blocks.json store: the registry (FakeWinreg fed by a recorded ConsentStore export), the
camera devices (FakeDevices, setupapi/cfgmgr32's answers) and the microphone endpoints
(FakeEndpointVolume) are the Windows boundary; everything above them is camguard's own code,
and holders are real processes ended by the real psutil killer (kill.py).
Block, timed block and its expiry, undo that never lifts a switch someone else flipped,
device disable only when elevated, holders ended through the given killer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil
import pytest

from camguard.core.blocks import (
    ActionResult,
    BlockManager,
    BlockOptions,
    BlockTarget,
    Outcome,
    StepKind,
)
from camguard.core.clock import FrozenClock
from camguard.core.models import DeviceKind
from camguard.platform.windows.devnode import GUID_DEVCLASS_IMAGE, is_camera, plan_enable
from camguard.platform.windows.enforcer import DEVICE_STEP, REGISTRY_STEP, WindowsEnforcer
from camguard.platform.windows.kill import WindowsKiller
from camguard.platform.windows.mute import EndpointMute
from camguard.platform.windows.registry import Registry
from camguard.platform.windows.switches import CONSENT_KEY, POLICY_KEY, ConsentSwitch
from camguard.store.blocks import JsonBlockStore
from tests.fakes import FakeEndpointVolume, FakeWinreg

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"
WEBCAM = CONSENT_KEY.format(cap="webcam")
MIC = CONSENT_KEY.format(cap="microphone")
DEADLINE = 10.0


class RecordingKiller(WindowsKiller):
    """The real psutil killer (kill.py runs on Linux too), noting whom it was asked to end."""

    def __init__(self) -> None:
        super().__init__(wait=DEADLINE)
        self.calls: list[tuple[int, float | None]] = []

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> ActionResult:
        self.calls.append((pid, create_time))
        return super().kill(pid, create_time, force=force)


@pytest.fixture
def holder() -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """A real process holding "the camera": what the sensor monitor would name."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc, psutil.Process(proc.pid).create_time()
    finally:
        proc.kill()
        proc.wait()


class FakeDevices:
    """devnode.CfgMgrDevices: {instance id: disabled}; ``refuse`` makes CM_Disable_DevNode
    fail for that id as Windows does for a device that cannot be disabled."""

    def __init__(self, devices: dict[str, bool], refuse: Iterable[str] = ()) -> None:
        self.devices = dict(devices)
        self.refuse = set(refuse)
        self.calls: list[tuple[str, str]] = []

    def cameras(self) -> dict[str, bool]:
        return dict(self.devices)

    def disable(self, instance: str) -> None:
        if instance in self.refuse:
            raise OSError(0x21, "CM_Disable_DevNode failed: CONFIGRET 0x21")
        self.calls.append(("disable", instance))
        self.devices[instance] = True

    def enable(self, instance: str) -> None:
        self.calls.append(("enable", instance))
        self.devices[instance] = False


USB_CAM = "USB\\VID_046D&PID_085B&MI_00\\7&1A2B3C4D&0&0000"
IR_CAM = "USB\\VID_04F2&PID_B6D9&MI_02\\7&2B3C4D5E&0&0002"


def rig(tmp_path: Path, *, machine: bool = False, devices: FakeDevices | None = None,
        holders: dict[DeviceKind, list[tuple[int, float | None]]] | None = None,
        mics: dict[str, FakeEndpointVolume] | None = None
        ) -> tuple[BlockManager, Registry, RecordingKiller, FrozenClock]:
    reg = Registry(FakeWinreg.from_reg_file(DATA / "consent_hkcu.reg"))
    killer = RecordingKiller()
    clock = FrozenClock()
    enforcer = WindowsEnforcer(
        ConsentSwitch(reg), killer, lambda kind: (holders or {}).get(kind, []),
        machine=machine, devices=devices,
        mic=None if mics is None else EndpointMute(lambda: mics))
    return (BlockManager(clock, JsonBlockStore(tmp_path / "blocks.json"), enforcer), reg,
            killer, clock)


def test_a_users_camera_block_denies_ends_holders_and_undoes_exactly(
        tmp_path: Path, holder: tuple[subprocess.Popen[bytes], float]) -> None:
    proc, started = holder
    name = psutil.Process(proc.pid).name()
    blocks, reg, killer, _clock = rig(tmp_path,
                                      holders={DeviceKind.CAMERA: [(proc.pid, started)]})
    assert reg.get(WEBCAM, "Value") == ("Allow", 1)
    report = blocks.block(BlockTarget.CAMERA, None)
    assert report.result.ok, report.result
    assert reg.get(WEBCAM, "Value") == ("Deny", 1)
    assert killer.calls == [(proc.pid, started)]
    assert proc.wait(DEADLINE) is not None  # ended for real
    [block], _ = blocks.active()  # read back from blocks.json: the step survives a restart
    [step] = block.steps
    assert (step.kind, step.target) == (StepKind.PLATFORM, f"{REGISTRY_STEP}{WEBCAM}\\Value")
    assert report.result.details == (
        "camera: Windows now denies the camera to apps (your privacy settings); ended "
        f"{name} ({proc.pid})",)
    assert blocks.unblock(BlockTarget.CAMERA).result.ok
    assert reg.get(WEBCAM, "Value") == ("Allow", 1)
    assert blocks.active() == ([], [])


def test_a_timed_block_expires_and_restores(tmp_path: Path) -> None:
    blocks, reg, _killer, clock = rig(tmp_path)
    assert blocks.block(BlockTarget.ALL, 900.0).result.ok
    assert reg.get(WEBCAM, "Value") == ("Deny", 1) and reg.get(MIC, "Value") == ("Deny", 1)
    clock.advance(899)
    assert blocks.expire_due().result.message == "nothing expired"
    assert reg.get(WEBCAM, "Value") == ("Deny", 1)
    clock.advance(1)
    assert blocks.expire_due().result.ok
    assert reg.get(WEBCAM, "Value") == ("Allow", 1) and reg.get(MIC, "Value") == ("Allow", 1)


def test_unblock_never_lifts_a_switch_someone_else_flipped(tmp_path: Path) -> None:
    blocks, reg, _killer, _clock = rig(tmp_path)
    reg.set(MIC, "Value", "Deny", 1)  # the user denied the microphone before camguard
    report = blocks.block(BlockTarget.ALL, None)
    assert report.result.ok
    [cam] = [b for b in blocks.active()[0] if b.kind is DeviceKind.CAMERA]
    # Nothing of camguard's to undo for the microphone: no block is recorded for it.
    assert [b.kind for b in blocks.active()[0]] == [DeviceKind.CAMERA]
    assert "already denies the microphone to apps (your privacy settings)" in " ".join(
        report.result.details)
    reg.set(WEBCAM, "Value", "Prompt", 1)  # changed in Settings while blocked
    result = blocks.unblock(BlockTarget.ALL).result
    assert result.ok
    assert reg.get(WEBCAM, "Value") == ("Prompt", 1) and reg.get(MIC, "Value") == ("Deny", 1)
    assert "left as it is: changed by someone else" in " ".join(result.details)
    assert cam.steps


def test_elevated_blocks_the_machine_policy_and_removes_it_again(tmp_path: Path) -> None:
    blocks, reg, _killer, _clock = rig(tmp_path, machine=True)
    assert reg.get(POLICY_KEY, "LetAppsAccessCamera") is None
    report = blocks.block(BlockTarget.CAMERA, None)
    assert report.result.details == (
        "camera: Windows now denies the camera to apps (the machine policy)",)
    assert reg.get(POLICY_KEY, "LetAppsAccessCamera") == (2, 4)
    assert reg.get(WEBCAM, "Value") == ("Allow", 1)  # the user's own switch untouched
    assert blocks.unblock(BlockTarget.CAMERA).result.ok
    assert reg.get(POLICY_KEY, "LetAppsAccessCamera") is None


def test_device_disable_only_when_asked_and_elevated(tmp_path: Path) -> None:
    devices = FakeDevices({USB_CAM: False, IR_CAM: True})  # the IR camera disabled by hand
    blocks, _reg, _killer, _clock = rig(tmp_path, machine=True, devices=devices)
    assert blocks.block(BlockTarget.CAMERA, None).result.ok
    assert devices.calls == []  # not asked: the privacy switch only
    report = blocks.block(BlockTarget.CAMERA, None, BlockOptions(unbind_usb=True))
    assert report.result.ok, report.result
    assert devices.calls == [("disable", USB_CAM)]
    # Re-applying never disables twice nor records a step twice.
    blocks.block(BlockTarget.CAMERA, None, BlockOptions(unbind_usb=True))
    [block], _ = blocks.active()
    assert [s.target for s in block.steps if s.target.startswith(DEVICE_STEP)] == [
        DEVICE_STEP + USB_CAM]
    assert blocks.unblock(BlockTarget.CAMERA).result.ok
    assert devices.devices == {USB_CAM: False, IR_CAM: True}  # the hand-disabled one stays
    assert devices.calls[-1] == ("enable", USB_CAM)


def test_device_disable_refused_without_elevation_and_failure_keeps_the_rest(
        tmp_path: Path) -> None:
    blocks, reg, _killer, _clock = rig(tmp_path)  # not elevated: no device switch
    report = blocks.block(BlockTarget.CAMERA, None, BlockOptions(unbind_usb=True))
    assert report.result.outcome is Outcome.REFUSED
    assert "needs an elevated camguard" in report.result.message
    assert reg.get(WEBCAM, "Value") == ("Deny", 1)  # what could be done is done
    assert blocks.active()[0][0].steps  # and recorded, so it is undone later
    devices = FakeDevices({USB_CAM: False}, refuse={USB_CAM})
    (tmp_path / "2").mkdir()
    blocks2, _reg2, _k, _c = rig(tmp_path / "2", machine=True, devices=devices)
    report = blocks2.block(BlockTarget.CAMERA, None, BlockOptions(unbind_usb=True))
    assert report.result.outcome is Outcome.FAILED and "CONFIGRET 0x21" in report.result.message
    assert "(the rest is switched off)" in report.result.message


def test_microphone_block_mutes_and_restores_only_what_it_muted(
        tmp_path: Path, holder: tuple[subprocess.Popen[bytes], float]) -> None:
    proc, _started = holder
    mics = {"{0.0.1.00000000}.{a}": FakeEndpointVolume(), "{0.0.1.00000000}.{b}":
            FakeEndpointVolume(muted=True)}
    blocks, reg, killer, _clock = rig(tmp_path, mics=mics,
                                      holders={DeviceKind.MICROPHONE: [(proc.pid, None)]})
    assert blocks.block(BlockTarget.MICROPHONE, None).result.ok
    assert [v.muted for v in mics.values()] == [True, True]
    assert reg.get(MIC, "Value") == ("Deny", 1) and killer.calls == [(proc.pid, None)]
    [block], _ = blocks.active()
    assert {s.kind for s in block.steps} == {StepKind.PLATFORM, StepKind.MIC_MUTE}
    assert blocks.unblock(BlockTarget.MICROPHONE).result.ok
    assert [v.muted for v in mics.values()] == [False, True]


def test_a_registry_that_refuses_is_a_refusal_not_a_crash(tmp_path: Path) -> None:
    blocks, reg, _killer, _clock = rig(tmp_path)

    def denied(*_a: object) -> None:
        raise PermissionError(5, "Access is denied")

    reg.set = denied  # type: ignore[method-assign]
    report = blocks.block(BlockTarget.CAMERA, None)
    assert report.result.outcome is Outcome.REFUSED and "Access is denied" in report.result.message
    assert blocks.active() == ([], [])  # nothing done, nothing recorded


def test_unblock_without_a_record_leaves_windows_alone(tmp_path: Path) -> None:
    blocks, reg, _killer, _clock = rig(tmp_path)
    reg.set(WEBCAM, "Value", "Deny", 1)
    result = blocks.unblock(BlockTarget.CAMERA).result
    assert result.ok and "left as they are" in result.details[0]
    assert reg.get(WEBCAM, "Value") == ("Deny", 1)


def test_device_decisions() -> None:
    assert is_camera(USB_CAM, GUID_DEVCLASS_IMAGE)
    assert not is_camera("USB\\VID_04B8&PID_0142\\X", GUID_DEVCLASS_IMAGE)  # a scanner
    assert plan_enable('["a", "b", 3, "' + "x" * 300 + '"]', {"a": True, "c": True}) == (
        ["a"], ["b"])
    assert plan_enable("not json", {"a": True}) == ([], [])


@pytest.mark.parametrize("data", ["", "{}", '{"key": 1}', "[1]"])
def test_an_unreadable_registry_record_is_reported(tmp_path: Path, data: str) -> None:
    from camguard.core.blocks import UndoStep

    reg = Registry(FakeWinreg())
    enforcer = WindowsEnforcer(ConsentSwitch(reg), RecordingKiller(), lambda kind: [],
                               machine=False)
    result = enforcer.undo(DeviceKind.CAMERA, [UndoStep(StepKind.PLATFORM,
                                                        REGISTRY_STEP + "HKCU\\X\\Value",
                                                        data=data)])
    assert result.outcome is Outcome.NOT_FOUND and "Settings > Privacy" in result.message
