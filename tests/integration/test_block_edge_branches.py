"""The Linux blocker when things are not as recorded, for real (stand-in nodes, the helper in
this process): no helper, a sound server that cannot be reached, a node that is not a
device, a node that looks blocked without a record, a rule left behind, a lost helper state."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from camguard.core.blocks import BlockOptions, Outcome, StepKind, UndoStep
from camguard.core.models import DeviceKind
from camguard.platform.linux import helper
from camguard.platform.linux.block import NO_HELPER, LinuxBlocker, load_mic_switch
from camguard.platform.linux.helper_runner import InProcessHelper
from camguard.platform.linux.kill import Killer
from tests.conftest import make_standin, need_root

pytestmark = pytest.mark.real

# Nothing listens here: the sound server is not running.
NO_SOUND_SERVER = "unix:/nonexistent/camguard-test/native"
PLAIN = BlockOptions()


def blocker(devdir: Path, tmp_path: Path, *, helper_on: bool = True, mic: bool = False
            ) -> LinuxBlocker:
    cams, mics = (str(devdir / "video*"),), (str(devdir / "snd" / "pcmC*D*c"),)
    rules = str(tmp_path / "rules.d")
    runner = InProcessHelper((*cams, *mics), str(tmp_path / "helper" / "nodes.json"),
                             rules_dir=rules, run_udevadm=False, sys_root=str(tmp_path / "sys"))
    return LinuxBlocker(cams, mics, killer=Killer(), helper=runner if helper_on else None,
                        mic=load_mic_switch(NO_SOUND_SERVER) if mic else None,
                        sys_root=str(tmp_path / "sys"), rules_dir=rules)


def looks_blocked(path: Path) -> Path:
    os.chown(path, 0, 0)
    path.chmod(0)
    return path


def test_raw_mic_nodes_without_the_helper_are_refused(devdir: Path, tmp_path: Path) -> None:
    make_standin(devdir / "snd" / "pcmC0D0c")
    applied = blocker(devdir, tmp_path, helper_on=False).apply(DeviceKind.MICROPHONE, PLAIN)
    assert applied.result.outcome is Outcome.REFUSED
    assert applied.result.message == "blocking microphone device nodes " + NO_HELPER
    assert applied.steps == ()


def test_an_unreachable_sound_server_fails_the_mute_and_its_restore(devdir: Path,
                                                                   tmp_path: Path) -> None:
    need_root()
    node = make_standin(devdir / "snd" / "pcmC0D0c")
    b = blocker(devdir, tmp_path, mic=True)
    applied = b.apply(DeviceKind.MICROPHONE, PLAIN)
    assert applied.result.outcome is Outcome.FAILED
    assert "cannot reach the sound server" in applied.result.message
    assert "all-off stays armed" not in applied.result.message  # no watcher outlives us
    assert [s.kind for s in applied.steps] == [StepKind.NODE]  # the node is closed anyway
    assert stat.S_IMODE(node.stat().st_mode) == 0
    undone = b.undo(DeviceKind.MICROPHONE, [UndoStep(StepKind.MIC_MUTE, data="{not json"),
                                            *applied.steps])
    assert undone.outcome is Outcome.FAILED and "cannot reach the sound server" in undone.message
    assert stat.S_IMODE(node.stat().st_mode) == 0o666  # the node was still restored


def test_a_glob_match_that_is_not_a_device_is_reported(devdir: Path, tmp_path: Path) -> None:
    need_root()
    (devdir / "video3").write_text("")  # a regular file where a camera node would be
    applied = blocker(devdir, tmp_path).apply(DeviceKind.CAMERA, PLAIN)
    assert applied.result.outcome is Outcome.FAILED
    assert applied.result.message == f"{devdir / 'video3'}: not a character device"


def test_a_node_that_looks_blocked_without_any_record(devdir: Path, tmp_path: Path) -> None:
    need_root()
    cam = looks_blocked(make_standin(devdir / "video0"))
    r = blocker(devdir, tmp_path, helper_on=False).undo(DeviceKind.CAMERA, [])
    assert r.outcome is Outcome.REFUSED and r.message == "looks blocked, but restoring it " \
        + NO_HELPER
    # With the helper: it has no saved state for the node (someone else made it 0000).
    r = blocker(devdir, tmp_path).undo(DeviceKind.CAMERA, [])
    assert (r.outcome, r.message) == (Outcome.DONE, "was not blocked by camguard")
    assert stat.S_IMODE(cam.stat().st_mode) == 0  # left as someone chose


def test_a_rule_left_behind_is_removed_or_reported(devdir: Path, tmp_path: Path) -> None:
    need_root()
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / helper.UDEV_RULE_NAME).write_text(helper.UDEV_RULE)
    r = blocker(devdir, tmp_path).undo(DeviceKind.CAMERA, [])
    assert (r.outcome, r.message) == (Outcome.DONE, "udev rule removed")
    assert not (rules / helper.UDEV_RULE_NAME).exists()
    (rules / helper.UDEV_RULE_NAME).mkdir()  # not a regular file: left alone
    r = blocker(devdir, tmp_path).undo(DeviceKind.CAMERA, [])
    assert r.outcome is Outcome.REFUSED
    assert r.message == "udev rule: the rule path is not a regular file; left alone"


def test_a_blocked_node_replaced_by_a_file_is_reported_not_restored(devdir: Path,
                                                                    tmp_path: Path) -> None:
    need_root()
    cam = make_standin(devdir / "video0")
    b = blocker(devdir, tmp_path)
    assert b.apply(DeviceKind.CAMERA, PLAIN).result.ok
    cam.unlink()
    cam.write_text("")
    looks_blocked(cam)
    r = b.undo(DeviceKind.CAMERA, [])  # the record is lost; the helper's state is not
    assert r.outcome is Outcome.FAILED
    assert r.message == f"{cam}: not a character device"


def test_a_lost_helper_state_says_how_to_restore_by_hand(devdir: Path, tmp_path: Path) -> None:
    need_root()
    cam = make_standin(devdir / "video0")
    b = blocker(devdir, tmp_path)
    applied = b.apply(DeviceKind.CAMERA, PLAIN)
    assert applied.result.ok
    (tmp_path / "helper" / "nodes.json").unlink()
    r = b.undo(DeviceKind.CAMERA, applied.steps)
    assert r.outcome is Outcome.FAILED
    assert r.message == (f"{cam}: this node was not blocked by camguard (by hand: chown 0:0 "
                         f"{cam} && chmod 0666 {cam})")
    # A USB step needs no node state: without the helper it is refused with no recipe.
    r = blocker(devdir, tmp_path, helper_on=False).undo(
        DeviceKind.CAMERA, [UndoStep(StepKind.USB, "1-2:1.0")])
    assert r.outcome is Outcome.REFUSED and r.message == "restoring camera " + NO_HELPER
