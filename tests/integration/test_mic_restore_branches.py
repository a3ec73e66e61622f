"""Switching microphones back on restores exactly what all-off found, against real sound
servers: a microphone that was muted before all-off (and was unmuted by someone since) is
muted again, and is not reported as unmuted."""

from __future__ import annotations

import pytest

from camguard.platform.linux.mic_control import MicControl
from tests.realenv import SoundServer, wait_until

pytestmark = pytest.mark.real


def muted(srv: SoundServer, source: str = "sinemic") -> bool:
    return srv.pactl("get-source-mute", source).stdout.strip() == "Mute: yes"


def test_a_microphone_muted_before_all_off_is_muted_again_not_reported_unmuted(
        fresh_sound_server: SoundServer) -> None:
    srv = fresh_sound_server
    assert not muted(srv)  # unmuted now, though it was muted when all-off began
    mc = MicControl.from_state({"version": 1, "all_off": False,
                                "previous_mute": {"sinemic": True}}, srv.server)
    try:
        result = mc.all_on()
        assert result.ok, result.message
        assert result.sources == ()
        # In a person's words (issue 17: "unmuted none"):
        assert result.message == ("microphones back on (none was muted by camguard; 1 muted "
                                  "before all-off stay muted)")
        wait_until(lambda: muted(srv), 10, "sinemic to be muted as it was")
    finally:
        mc.close()
