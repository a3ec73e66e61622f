"""The microphone block through the app's long-lived microphone switch, against real sound
servers, without the helper: the mute is the block, the raw nodes are left and said so, and
the switch that muted is the one that unmutes. And a node two globs match is one node."""

from __future__ import annotations

from pathlib import Path

import pytest

from camguard.core.blocks import BlockOptions, Outcome, StepKind
from camguard.core.models import DeviceKind
from camguard.platform.linux.block import NO_HELPER, LinuxBlocker, MicControlSwitch
from camguard.platform.linux.kill import Killer
from camguard.platform.linux.mic_control import MicControl
from tests.conftest import make_standin
from tests.realenv import SoundServer, wait_until

pytestmark = pytest.mark.real


def source_muted(srv: SoundServer, source: str = "sinemic") -> bool:
    return srv.pactl("get-source-mute", source).stdout.strip() == "Mute: yes"


def test_the_apps_switch_mutes_leaves_raw_nodes_and_unmutes(
        fresh_sound_server: SoundServer, devdir: Path) -> None:
    srv = fresh_sound_server
    make_standin(devdir / "snd" / "pcmC0D0c")
    control = MicControl(srv.server)
    try:
        b = LinuxBlocker([], [str(devdir / "snd" / "pcmC*D*c")], helper=None, killer=Killer(),
                         mic=MicControlSwitch(srv.server, control))
        applied = b.apply(DeviceKind.MICROPHONE, BlockOptions())
        assert applied.result.outcome is Outcome.DONE, applied.result.message
        assert f"raw capture nodes left as they are: closing them {NO_HELPER}" in \
            applied.result.details
        assert [s.kind for s in applied.steps] == [StepKind.MIC_MUTE]
        wait_until(lambda: source_muted(srv), 10, "the microphone to be muted")
        # The app's switch stays armed (its watcher was not closed with the call): a
        # microphone unmuted behind camguard's back is muted again.
        assert control.state_dict()["all_off"] is True
        assert srv.pactl("set-source-mute", "sinemic", "0").returncode == 0
        wait_until(lambda: source_muted(srv), 10, "the microphone to be muted again")
        undone = b.undo(DeviceKind.MICROPHONE, applied.steps)
        assert undone.outcome is Outcome.DONE, undone.message
        assert control.state_dict()["all_off"] is False
        wait_until(lambda: not source_muted(srv), 10, "the microphone to be back")
    finally:
        control.close()


def test_a_node_two_globs_match_is_one_node(devdir: Path) -> None:
    cam = make_standin(devdir / "video0")
    b = LinuxBlocker([str(devdir / "video*"), str(cam)], [], helper=None, killer=Killer())
    assert b.nodes(DeviceKind.CAMERA) == [str(cam)]
