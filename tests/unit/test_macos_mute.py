"""The macOS microphone switch and kill switch over recorded CoreAudio trees (FakeHal):
what gets muted, that only camguard's own mutes are undone, devices by UID across a replug,
damaged saved data, and the camera answer."""

from __future__ import annotations

import json

import pytest

from camguard.core.blocks import BlockOptions, Outcome, StepKind
from camguard.core.models import DeviceKind
from camguard.platform.macos import hal
from camguard.platform.macos.mute import MacEnforcer, MacMicSwitch
from tests.fakes import FakeHal

SYS = hal.SYSTEM_OBJECT
IN = hal.SCOPE_INPUT


def tree() -> FakeHal:
    """Built-in microphone (40, unmuted), speakers (41, no input), a headset (42) the user
    muted already, and an interface (43) whose mute exists only per channel."""
    f = FakeHal()
    f.set(SYS, hal.DEVICES, [40, 41, 42, 43])
    for dev, uid, name, inputs in ((40, "BuiltInMicrophoneDevice", "MacBook Microphone", [1]),
                                   (41, "BuiltInSpeakerDevice", "Speakers", []),
                                   (42, "Headset-UID", "Headset\x1b[31m", [2]),
                                   (43, "Scarlett-UID", "Scarlett 2i2", [3])):
        f.set(dev, hal.DEVICE_UID, uid)
        f.set(dev, hal.NAME, name)
        f.set(dev, hal.STREAMS, inputs, scope=IN)
    f.set(40, hal.MUTE, 0, scope=IN)
    f.set(42, hal.MUTE, 1, scope=IN)
    return f


def muted(f: FakeHal, dev: int) -> object:
    return f.values.get((dev, hal.MUTE, IN))


def test_mute_all_mutes_what_it_can_names_what_it_cannot_and_restores_its_own() -> None:
    f = tree()
    switch = MacMicSwitch(f)
    result, data = switch.mute_all()
    assert muted(f, 40) == 1 and muted(f, 42) == 1
    assert result.outcome is Outcome.FAILED and "Scarlett 2i2 cannot be muted" in result.message
    assert json.loads(data) == {"unmute": ["BuiltInMicrophoneDevice"]}
    restored = switch.restore(data)
    assert restored.outcome is Outcome.DONE and restored.message == "unmuted: MacBook Microphone"
    assert muted(f, 40) == 0
    assert muted(f, 42) == 1  # the user's own mute stays


def test_everything_muted_is_done_and_names_are_literal() -> None:
    f = tree()
    f.values[(SYS, hal.DEVICES, hal.SCOPE_GLOBAL)] = [40, 41, 42]
    f.set(42, hal.MUTE, 0, scope=IN)
    result, data = MacMicSwitch(f).mute_all()
    assert result.outcome is Outcome.DONE and "\x1b" not in result.message
    assert json.loads(data)["unmute"] == ["BuiltInMicrophoneDevice", "Headset-UID"]


def test_restore_finds_devices_by_uid_after_a_replug() -> None:
    f = tree()
    switch = MacMicSwitch(f)
    _result, data = switch.mute_all()
    # Unplugged and plugged in again: a new object id, the same UID.
    f.values[(SYS, hal.DEVICES, hal.SCOPE_GLOBAL)] = [41, 42, 43, 77]
    for (obj, sel, scope), value in list(f.values.items()):
        if obj == 40:
            f.values[(77, sel, scope)] = value
    restored = switch.restore(data)
    assert restored.outcome is Outcome.DONE and muted(f, 77) == 0


def test_restore_says_when_a_device_is_gone_or_the_data_is_damaged() -> None:
    f = tree()
    switch = MacMicSwitch(f)
    gone = switch.restore(json.dumps({"unmute": ["Unplugged-UID"]}))
    assert gone.outcome is Outcome.DONE and "is gone (unplugged?)" in gone.details[0]
    for bad in ("not json", "[]", '{"unmute": [1]}', '{"other": []}', "x" * 100_000):
        result = switch.restore(bad)
        assert result.outcome is Outcome.FAILED and "damaged" in result.message, bad
    f.fail[(40, hal.MUTE)] = -50
    stuck = switch.restore(json.dumps({"unmute": ["BuiltInMicrophoneDevice"]}))
    assert stuck.outcome is Outcome.FAILED and "cannot be unmuted" in stuck.message


def test_no_microphone_at_all() -> None:
    f = FakeHal()
    f.set(SYS, hal.DEVICES, [])
    result, data = MacMicSwitch(f).mute_all()
    assert result.outcome is Outcome.NOT_FOUND and json.loads(data) == {"unmute": []}


def test_the_enforcer_mutes_microphones_and_undoes_exactly_that() -> None:
    f = tree()
    enforcer = MacEnforcer(MacMicSwitch(f))
    applied = enforcer.apply(DeviceKind.MICROPHONE, BlockOptions())
    # One device failed, but the muted one is recorded so that it can be undone.
    assert [s.kind for s in applied.steps] == [StepKind.MIC_MUTE]
    assert applied.result.outcome is Outcome.FAILED
    again = enforcer.apply(DeviceKind.MICROPHONE, BlockOptions(), applied.steps)
    assert again.steps == ()  # nothing new to mute: no second step
    undone = enforcer.undo(DeviceKind.MICROPHONE, applied.steps)
    assert undone.outcome is Outcome.DONE and muted(f, 40) == 0
    assert enforcer.undo(DeviceKind.MICROPHONE, ()).message == "was not blocked"


@pytest.mark.parametrize("mic", [None, "switch"])
def test_cameras_cannot_be_switched_off_and_it_says_so(mic: str | None) -> None:
    enforcer = MacEnforcer(MacMicSwitch(tree()) if mic else None)
    applied = enforcer.apply(DeviceKind.CAMERA, BlockOptions(persistent=True))
    assert applied.steps == () and applied.result.outcome is Outcome.FAILED
    assert "camguard kill PID" in applied.result.message
    assert enforcer.undo(DeviceKind.CAMERA, ()).outcome is Outcome.DONE
