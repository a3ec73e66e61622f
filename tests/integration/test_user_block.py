"""The kill switch for an ordinary user: no root, no helper (issue 17).

`make run` as a normal user used to answer "Block camera" with "needs root or the privileged
helper" and leave the app holding the camera. Now the block ends the account's own holders,
names other accounts' holders without touching them, and, while it lasts, the tray's guard
ends any of the account's processes that opens the camera.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from camguard.core.blocks import BlockManager, BlockTarget, StepKind
from camguard.core.models import DeviceKind
from camguard.monitor import Monitor
from camguard.platform import current
from camguard.platform.clock import SystemClock
from camguard.platform.guard import UserGuard
from camguard.platform.linux.block import LinuxBlocker
from camguard.platform.linux.helper_runner import PkexecHelper
from camguard.platform.linux.kill import Killer
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from camguard.store.blocks import JsonBlockStore
from tests.conftest import Holder, make_standin, need
from tests.realenv import wait_until
from tests.service_env import SYSTEM_PYTHON, Account, Accounts, Box, UserHolder, setpriv


def _block_as(b: Box, who: Account, *args: str) -> subprocess.CompletedProcess[str]:
    home = b.root / "home" / who.name
    home.mkdir(mode=0o755, exist_ok=True)
    os.chown(home, who.uid, who.gid)
    return subprocess.run(
        [*setpriv(who), SYSTEM_PYTHON, "-m", "camguard", *args,
         "--camera-glob", str(b.dev / "video*"), "--mic-glob", str(b.dev / "snd" / "pcmC*D*c")],
        capture_output=True, text=True, timeout=60, cwd=b.root, env=b.user_env(who),
        check=False)


def test_block_without_privileges_ends_own_holders_and_leaves_other_accounts(
        sandbox: Box, accounts: Accounts) -> None:
    need(not PkexecHelper.available(), "the privileged helper is not installed here (pkexec "
         "would ask for a password)")
    alice, bob = accounts.user(), accounts.user()
    node = sandbox.node("video0")
    mine = UserHolder(sandbox, alice, [node])
    theirs = UserHolder(sandbox, bob, [node])

    res = _block_as(sandbox, alice, "block", "camera")
    out = res.stdout + res.stderr
    # Alice's app is closed; Bob's is not signalled (alice may not), and the block says
    # plainly that other accounts are not covered.
    wait_until(lambda: mine.proc.poll() is not None, 15, "alice's holder to be ended")
    assert theirs.proc.poll() is None
    assert res.returncode == 0, out
    assert f"(pid {mine.pid})" in out
    assert "other accounts are not covered" in out
    assert "needs root or the privileged helper" in out

    listed = _block_as(sandbox, alice, "blocks")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert f"apps of {alice.name} that open it are closed by camguard's tray" in listed.stdout
    back = _block_as(sandbox, alice, "unblock", "camera")
    assert back.returncode == 0, back.stdout + back.stderr
    theirs.end()


def test_block_as_root_without_the_helper_names_other_accounts_holders(
        tmp_path: Path, sandbox: Box, accounts: Accounts) -> None:
    # Root can see every process: a holder of another account is named and not signalled
    # by the guard's block (only the caller's own processes are ended).
    bob = accounts.user()
    node = sandbox.node("video1")
    theirs = UserHolder(sandbox, bob, [node])
    blocker = LinuxBlocker([str(sandbox.dev / "video*")], [], helper=None, killer=Killer())
    manager = BlockManager(SystemClock(), JsonBlockStore(tmp_path / "blocks.json"), blocker)
    report = manager.block(BlockTarget.CAMERA, None)
    assert theirs.proc.poll() is None
    assert report.result.outcome.value == "refused"
    assert f"(pid {theirs.pid})" in report.result.message
    assert "still in use by another account" in report.result.message
    theirs.end()


def test_block_without_privileges_and_no_other_holder_is_done(
        sandbox: Box, accounts: Accounts) -> None:
    need(not PkexecHelper.available(), "the privileged helper is not installed here (pkexec "
         "would ask for a password)")
    alice = accounts.user()
    node = sandbox.node("video0")
    mine = UserHolder(sandbox, alice, [node])
    res = _block_as(sandbox, alice, "block", "camera", "--for", "15m")
    out = res.stdout + res.stderr
    wait_until(lambda: mine.proc.poll() is not None, 15, "alice's holder to be ended")
    assert res.returncode == 0, out
    assert f"(pid {mine.pid})" in out and "other accounts are not covered" in out
    assert _block_as(sandbox, alice, "unblock", "camera").returncode == 0


def test_the_guard_ends_this_accounts_new_openers_while_the_block_lasts(
        tmp_path: Path, devdir: Path, holders: list[Holder]) -> None:
    node = make_standin(devdir / "video0")
    killer = Killer()
    blocker = LinuxBlocker([f"{devdir}/video*"], [f"{devdir}/snd/pcmC*D*c"], helper=None,
                           killer=killer)
    manager = BlockManager(SystemClock(), JsonBlockStore(tmp_path / "blocks.json"), blocker)
    report = manager.block(BlockTarget.CAMERA, None)
    [block] = manager.active()[0]
    assert block.kind is DeviceKind.CAMERA
    assert [s.kind for s in block.steps] == [StepKind.USER_GUARD], report
    assert block.guarded_uids() == {os.geteuid()}

    results: list[str] = []
    guard = UserGuard(lambda: manager.active()[0], killer.kill, SystemClock().now,
                      current().probes().process_owner,
                      report=lambda r: results.append(r.message))
    source = ProcfsSource([f"{devdir}/video*"], [f"{devdir}/snd/pcmC*D*c"],
                          describer=ProcessDescriber())
    monitor = Monitor([source], SystemClock(), settle=0.002)
    monitor.add_sink(guard)
    monitor.start()
    try:
        opener = Holder([node])
        holders.append(opener)
        assert opener.proc.wait(15) is not None  # ended by the guard, not by the test
        wait_until(lambda: len(results) == 1, 10, "the guard's report")
        manager.unblock(BlockTarget.CAMERA)
        after = Holder([node])  # the block is lifted: the camera is free again
        holders.append(after)
        wait_until(lambda: after.pid in {u.process.pid for u in monitor.state.usages
                                         if u.process is not None}, 10, "the new use")
        assert after.proc.poll() is None and len(results) == 1
    finally:
        monitor.stop()
        guard.close()
