"""Ending holders without the helper, for real: the blocker as root with no helper ends this
account's holders (and reports one it may not end); a zombie has already exited."""

from __future__ import annotations

import errno
import os
import signal
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


# This kernel has pidfd_open(2) and cannot be made to refuse it on demand: these two tests
# replace that one OS call with one that fails as it does on a kernel before 5.3 (ENOSYS) or
# when the process exits between the look and the pin (ESRCH). Everything else is real: the
# process, its signals, its exit.
def no_pidfd(exc: OSError) -> object:
    def pidfd_open(pid: int, flags: int = 0) -> int:
        raise exc
    return pidfd_open


def test_without_pidfd_kill_signals_by_pid_behind_the_same_checks(
        devdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.test_kill import Stubborn

    polite = Holder([make_standin(devdir / "video0")])
    stubborn = Stubborn(make_standin(devdir / "video1"))
    try:
        monkeypatch.setattr(os, "pidfd_open", no_pidfd(OSError(errno.ENOSYS, "no pidfd_open")))
        target = psutil.Process(polite.pid)
        r = Killer().kill(polite.pid, target.create_time())
        assert (r.outcome, r.message) == (
            Outcome.DONE, f"ended {target.name()} (pid {polite.pid}) (SIGTERM)")
        assert polite.proc.wait(10) == -signal.SIGTERM
        # Ignores SIGTERM: SIGKILL by pid after the grace, and the wait polls /proc.
        r = Killer(grace=0.3).kill(stubborn.proc.pid)
        assert r.outcome is Outcome.DONE, r.message
        assert r.message.endswith("(SIGKILL after SIGTERM was ignored for 0.3 s)")
        assert stubborn.proc.wait(10) == -signal.SIGKILL
    finally:
        stubborn.end()
        polite.proc.kill()
        polite.proc.wait(10)


def test_a_process_gone_before_it_could_be_pinned_has_already_exited(
        devdir: Path, holders: list[Holder], monkeypatch: pytest.MonkeyPatch) -> None:
    h = Holder([make_standin(devdir / "video0")])
    holders.append(h)
    monkeypatch.setattr(os, "pidfd_open", no_pidfd(ProcessLookupError(errno.ESRCH, "gone")))
    r = Killer().kill(h.pid)
    assert (r.outcome, r.message) == (
        Outcome.NOT_FOUND, f"{psutil.Process(h.pid).name()} (pid {h.pid}) has already exited")
    assert h.proc.poll() is None  # nothing was signalled
