"""The CoreAudio/CoreMediaIO readers against recorded object trees (FakeHal), and the
pyobjc adapter against a Fake pyobjc module in the calling convention it assumes."""

from __future__ import annotations

import sys

import pytest

from camguard.core.models import DeviceKind
from camguard.platform.macos import hal
from camguard.platform.macos.state import AudioProcess, DeviceReading
from tests.fakes import FakeHal, FakePyObjCFramework

SYS = hal.SYSTEM_OBJECT


def audio_tree() -> FakeHal:
    """A MacBook: built-in microphone (40), speakers (41, output only), a USB headset (42)
    that records; Zoom (pid 501) records, Music (502) only plays; a process object (92) that
    went away between the list and the questions."""
    f = FakeHal()
    f.set(SYS, hal.DEVICES, [40, 41, 42])
    for dev, uid, name, inputs, running in ((40, "BuiltInMicrophoneDevice", "MacBook Pro "
                                             "Microphone", [400], 1),
                                            (41, "BuiltInSpeakerDevice", "Speakers", [], 1),
                                            (42, "AppleUSBAudioEngine:Headset", "Headset",
                                             [420], 0)):
        f.set(dev, hal.DEVICE_UID, uid)
        f.set(dev, hal.NAME, name)
        f.set(dev, hal.STREAMS, inputs, scope=hal.SCOPE_INPUT)
        f.set(dev, hal.RUNNING_SOMEWHERE, running)
    f.set(SYS, hal.PROCESS_OBJECTS, [90, 91, 92])
    for obj, pid, bundle, rec in ((90, 501, "us.zoom.xos", 1), (91, 502, "com.apple.Music", 0)):
        f.set(obj, hal.PROCESS_PID, pid)
        f.set(obj, hal.PROCESS_BUNDLE, bundle)
        f.set(obj, hal.PROCESS_RUNNING_INPUT, rec)
    f.fail[(92, hal.PROCESS_PID)] = int.from_bytes(b"!obj", "big")
    return f


def camera_tree() -> FakeHal:
    f = FakeHal()
    f.set(SYS, hal.DEVICES, [30, 31])
    f.set(30, hal.DEVICE_UID, "0x8020000005ac8514")
    f.set(30, hal.NAME, "FaceTime HD Camera")
    f.set(30, hal.RUNNING_SOMEWHERE, 1)
    f.set(31, hal.RUNNING_SOMEWHERE, 0)  # a virtual camera without a UID or name
    return f


def test_fourcc_matches_the_headers() -> None:
    assert hal.RUNNING_SOMEWHERE == 0x676F6E65
    assert hal.SCOPE_GLOBAL == 0x676C6F62
    with pytest.raises(ValueError, match="not a four-character code"):
        hal.fourcc("toolong")


def test_cameras_and_microphones_are_read_with_their_running_state() -> None:
    assert hal.read_cameras(camera_tree()) == [
        DeviceReading(DeviceKind.CAMERA, "0x8020000005ac8514", "FaceTime HD Camera", True),
        DeviceReading(DeviceKind.CAMERA, "object-31", "", False)]
    # The speakers run, but have no input streams: not a microphone.
    assert hal.read_microphones(audio_tree()) == [
        DeviceReading(DeviceKind.MICROPHONE, "BuiltInMicrophoneDevice",
                      "MacBook Pro Microphone", True),
        DeviceReading(DeviceKind.MICROPHONE, "AppleUSBAudioEngine:Headset", "Headset", False)]


def test_process_objects_name_recorders_and_skip_vanished_ones() -> None:
    assert hal.read_processes(audio_tree()) == [AudioProcess(501, "us.zoom.xos", True),
                                                AudioProcess(502, "com.apple.Music", False)]


def test_before_14_2_there_is_no_process_list() -> None:
    tree = audio_tree()
    del tree.values[(SYS, hal.PROCESS_OBJECTS, hal.SCOPE_GLOBAL)]  # 'who?' from the HAL
    assert hal.read_processes(tree) is None
    tree.fail[(SYS, hal.PROCESS_OBJECTS)] = -50
    with pytest.raises(hal.HalError, match="OSStatus -50"):
        hal.read_processes(tree)


def test_watched_covers_device_lists_each_device_and_the_process_list() -> None:
    audio, cmio = audio_tree(), camera_tree()
    got = {(a is audio, obj, sel) for a, obj, sel in hal.watched(audio, cmio)}
    assert got == {(True, SYS, hal.DEVICES), (False, SYS, hal.DEVICES),
                   (True, SYS, hal.PROCESS_OBJECTS)} | {
        (True, d, hal.RUNNING_SOMEWHERE) for d in (40, 41, 42)} | {
        (False, d, hal.RUNNING_SOMEWHERE) for d in (30, 31)}


@pytest.mark.parametrize("prefix", ["AudioObject", "CMIOObject"])
def test_the_pyobjc_adapter_reads_and_listens(monkeypatch: pytest.MonkeyPatch,
                                              prefix: str) -> None:
    tree = audio_tree() if prefix == "AudioObject" else camera_tree()
    fake = FakePyObjCFramework(tree, prefix)
    monkeypatch.setitem(sys.modules, fake.module.__name__, fake.module)
    access = hal.PyObjCProperties(fake.module.__name__)
    if prefix == "AudioObject":
        assert hal.read_microphones(access) == hal.read_microphones(tree)
        assert hal.read_processes(access) == hal.read_processes(tree)
        tree.set(40, hal.MUTE, 0, scope=hal.SCOPE_INPUT)
        access.set_u32(40, hal.MUTE, hal.SCOPE_INPUT, 1)
        assert access.u32(40, hal.MUTE, hal.SCOPE_INPUT) == 1
        with pytest.raises(hal.HalError, match="setting"):
            access.set_u32(41, hal.MUTE, hal.SCOPE_INPUT, 1)
    else:
        assert hal.read_cameras(access) == hal.read_cameras(tree)
    calls: list[str] = []
    token = access.listen(SYS, hal.DEVICES, lambda: calls.append("wake"))
    assert tree.fire(SYS, hal.DEVICES) == 1 and calls == ["wake"]
    access.unlisten(token)
    assert tree.fire(SYS, hal.DEVICES) == 0
    with pytest.raises(hal.HalError, match="OSStatus"):
        access.u32(999, hal.RUNNING_SOMEWHERE)
