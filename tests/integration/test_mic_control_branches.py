"""The microphone switch's bookkeeping against real sound servers: a muted recording that
ends is forgotten (the server reuses stream indices), never reported as still muted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from camguard.platform.linux.mic_control import MicControl
from tests.audio import Recording
from tests.realenv import SoundServer, wait_until

pytestmark = pytest.mark.real


@pytest.fixture
def recordings() -> Iterator[list[Recording]]:
    started: list[Recording] = []
    yield started
    for rec in started:
        rec.end()


def test_a_muted_recording_that_ends_is_forgotten(fresh_sound_server: SoundServer,
                                                  recordings: list[Recording]) -> None:
    srv = fresh_sound_server
    rec = Recording(srv.env)
    recordings.append(rec)
    rec.wait_loud()
    mc = MicControl(srv.server)
    try:
        result = mc.mute_app(rec.pid)
        assert result.ok and len(result.streams) == 1, result.message
        assert mc.status().muted_streams == result.streams
        rec.end()
        wait_until(lambda: mc.status().muted_streams == (), 15,
                   "the ended recording to be forgotten")
        status = mc.status()
        assert status.ok and "0 recording(s) muted" in status.message
    finally:
        mc.close()
