"""A microphone block re-applied while its sound-server mute is in force, for real: the raw
node held by a real PipeWire daemon is closed to new openers and the daemon is left
running, because apps recording through it are muted already."""

from __future__ import annotations

from pathlib import Path

import pytest

from camguard.core.blocks import BlockOptions, Outcome, StepKind, UndoStep
from camguard.core.models import DeviceKind
from camguard.platform.linux.block import LinuxBlocker
from camguard.platform.linux.helper_runner import InProcessHelper
from camguard.platform.linux.kill import Killer
from tests import realenv
from tests.conftest import make_standin, need_root
from tests.sound_holder import pipewire_holding

pytestmark = pytest.mark.real


def test_reapplied_under_a_mute_the_sound_server_is_left_running(devdir: Path,
                                                                 tmp_path: Path) -> None:
    need_root()
    node = make_standin(devdir / "snd" / "pcmC0D0c")
    mics = (str(devdir / "snd" / "pcmC*D*c"),)
    with pipewire_holding(node, tmp_path) as server:
        killer = Killer()
        realenv.wait_until(lambda: killer.is_sound_server(server.pid), 15,
                           "pipewire to listen on its socket")
        b = LinuxBlocker((), mics, killer=killer, mic=None,
                         helper=InProcessHelper(mics, str(tmp_path / "helper" / "nodes.json"),
                                                run_udevadm=False))
        mute = UndoStep(StepKind.MIC_MUTE, data="{}")  # the block in force muted already
        applied = b.apply(DeviceKind.MICROPHONE, BlockOptions(), [mute])
        assert applied.result.outcome is Outcome.DONE, applied.result.message
        assert (f"left the sound server (pid {server.pid}) running: it holds {node} for "
                "every app; their recording is muted instead") in applied.result.details
        assert server.poll() is None
        assert b.undo(DeviceKind.MICROPHONE, applied.steps).ok
