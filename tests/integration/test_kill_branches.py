"""Ending holders without the helper, for real: the blocker as root with no helper ends this
account's holders (and reports one it may not end); a zombie has already exited."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from camguard.core.blocks import BlockOptions, Outcome, StepKind
from camguard.core.models import DeviceKind
from camguard.platform.linux.block import LinuxBlocker
from camguard.platform.linux.kill import Killer
from tests import realenv
from tests.conftest import Holder, make_standin, need_root

pytestmark = pytest.mark.real


def own_blocker(devdir: Path, killer: Killer) -> LinuxBlocker:
    return LinuxBlocker([str(devdir / "video*")], [], helper=None, killer=killer)


def test_without_the_helper_a_camera_block_ends_this_accounts_holders(
        devdir: Path, holders: list[Holder]) -> None:
    need_root()
    cam = make_standin(devdir / "video0")
    h = Holder([cam])
    holders.append(h)
    applied = own_blocker(devdir, Killer(grace=2.0)).apply(DeviceKind.CAMERA, BlockOptions())
    assert applied.result.outcome is Outcome.DONE, applied.result.message
    assert f"closed python (pid {h.pid})" in applied.result.details
    assert [s.kind for s in applied.steps] == [StepKind.USER_GUARD]
    assert h.proc.wait(10) is not None


def test_a_holder_the_killer_refuses_is_reported(devdir: Path, holders: list[Holder]) -> None:
    need_root()
    cam = make_standin(devdir / "video0")
    h = Holder([cam])
    holders.append(h)
    applied = own_blocker(devdir, Killer(protected=[h.pid])).apply(DeviceKind.CAMERA,
                                                                   BlockOptions())
    assert applied.result.outcome is Outcome.REFUSED
    assert applied.result.message.startswith(f"refusing to end python (pid {h.pid}): camguard "
                                             "runs inside it")
    assert h.proc.poll() is None


def test_a_zombie_has_already_exited() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        realenv.wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE,
                           10, "the child to become a zombie (exited, not yet waited for)")
        name = psutil.Process(child.pid).name()  # "python" or "python3", as the run's
        r = Killer().kill(child.pid)
        assert (r.outcome, r.message) == (Outcome.NOT_FOUND,
                                          f"{name} (pid {child.pid}) has already exited")
    finally:
        child.wait(10)
