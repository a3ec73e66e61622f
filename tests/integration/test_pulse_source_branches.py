"""The sound-server source's lifetime: stopping one never started is harmless, starting one
twice is a programming error said out loud; against a server address nobody serves."""

from __future__ import annotations

import pytest

from camguard.platform.linux.pulse import PulseSource
from camguard.platform.process import ProcessDescriber

pytestmark = pytest.mark.real

NO_SOUND_SERVER = "unix:/nonexistent/camguard-test/native"


def test_stop_before_start_is_harmless_and_a_second_start_is_refused() -> None:
    src = PulseSource(ProcessDescriber(), server=NO_SOUND_SERVER)
    src.stop()  # never started: nothing to stop
    wakes: list[int] = []
    src.start(lambda: wakes.append(1))
    try:
        with pytest.raises(RuntimeError, match=r"^source pulse already started$"):
            src.start(lambda: None)
        snap = src.snapshot()
        assert snap.degraded is not None and snap.usages == frozenset()
    finally:
        src.stop()
    src.stop()  # stopped twice: still harmless
