"""Muting Windows microphones and restoring exactly what camguard changed (mute.py), with
Fake IAudioEndpointVolume objects: the pycaw adapter that gives the real ones never ran."""

from __future__ import annotations

import json

from camguard.core.blocks import Outcome
from camguard.platform import base
from camguard.platform.windows.mute import EndpointMute, plan_unmute
from tests.fakes import FakeEndpointVolume


def test_mute_then_restore_only_what_camguard_muted() -> None:
    eps = {"array": FakeEndpointVolume(), "headset": FakeEndpointVolume(muted=True)}
    switch = EndpointMute(lambda: eps)
    assert isinstance(switch, base.MicSwitch)
    result, data = switch.mute_all()
    assert result.outcome is Outcome.DONE and "1 already muted" in result.message
    assert json.loads(data) == ["array"]
    assert eps["array"].muted and eps["headset"].calls == []
    restored = switch.restore(data)
    assert restored.outcome is Outcome.DONE
    assert not eps["array"].muted and eps["headset"].muted  # the user's own mute stays


def test_restore_leaves_what_changed_meanwhile() -> None:
    eps = {"array": FakeEndpointVolume(), "usb": FakeEndpointVolume()}
    switch = EndpointMute(lambda: eps)
    _result, data = switch.mute_all()
    eps["usb"].muted = False  # the user unmuted it by hand
    del eps["array"]  # and unplugged the other
    switch.restore(data)
    assert eps["usb"].calls == [True]  # camguard did not touch it again


def test_failure_keeps_what_was_done_for_the_restore() -> None:
    eps = {"a": FakeEndpointVolume(), "b": FakeEndpointVolume(fail=True)}
    result, data = EndpointMute(lambda: eps).mute_all()
    assert result.outcome is Outcome.FAILED and "AUDCLNT_E_DEVICE_INVALIDATED" in result.message
    assert json.loads(data) == ["a"]


def test_no_microphone_and_bad_data() -> None:
    result, data = EndpointMute(lambda: {}).mute_all()
    assert result.outcome is Outcome.NOT_FOUND and data == "[]"
    assert plan_unmute("not json", {"a": True}) == []
    assert plan_unmute('{"a": 1}', {"a": True}) == []
    assert plan_unmute('["a", 5, "b"]', {"a": True, "b": False}) == ["a"]
