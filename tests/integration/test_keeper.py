"""A block keeps its word when no other camguard runs (issue 17): `camguard block --for`
ends on time, and a block without privileges is enforced, by the keeper `block` starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from camguard.app.guard_local import needs_keeper
from camguard.cli.keeper import next_wait
from camguard.core.blocks import ActiveBlock, StepKind, UndoStep
from camguard.core.models import DeviceKind
from tests.conftest import HOLDER, need_root
from tests.integration.test_user_block import _block_as
from tests.realenv import wait_until
from tests.service_env import SYSTEM_PYTHON, Accounts, Box, UserHolder, setpriv

ROOT = Path(__file__).resolve().parents[2]


def keepers(uid: int | None = None) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline", "uids"]):
        cmd = p.info["cmdline"] or []
        if "keep-blocks" in cmd and "camguard" in cmd and (
                uid is None or p.info["uids"].real == uid):
            found.append(p)
    return found


def keepers_of(state: Path) -> list[psutil.Process]:
    out = []
    for p in keepers():
        with contextlib.suppress(psutil.Error):
            if p.environ().get("CAMGUARD_STATE_DIR") == str(state):
                out.append(p)
    return out


@pytest.fixture
def no_keeper_left() -> Iterator[None]:
    before = {p.pid for p in keepers()}
    yield
    # The keeper exits by itself once nothing needs it; a test that fails must not leave one.
    for p in keepers():
        if p.pid not in before:
            p.kill()


def test_a_timed_block_ends_on_time_with_nothing_else_running(
        tmp_path: Path, devdir: Path, no_keeper_left: None) -> None:
    need_root()
    node = devdir / "video0"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    node.chmod(0o666)
    state = tmp_path / "state"
    env = {**os.environ, "CAMGUARD_STATE_DIR": str(state),
           "CAMGUARD_CONFIG_DIR": str(tmp_path / "config"), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "camguard", "block", "camera", "--for", "3s",
                          "--camera-glob", f"{devdir}/video*",
                          "--mic-glob", f"{devdir}/snd/pcmC*D*c"],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert stat.S_IMODE(node.stat().st_mode) == 0  # closed by the in-process helper (root)
    # Nothing of camguard is run by the test from here on: the keeper alone reopens it.
    wait_until(lambda: stat.S_IMODE(node.stat().st_mode) == 0o666, 30, "the block to end")
    wait_until(lambda: json.loads((state / "blocks.json").read_text())["blocks"] == [], 30,
               "the block's record to go")
    wait_until(lambda: not keepers_of(state), 30, "the keeper to exit")


def test_without_privileges_the_keeper_guards_the_block_until_it_is_lifted(
        sandbox: Box, accounts: Accounts, no_keeper_left: None) -> None:
    alice = accounts.user()
    node = sandbox.node("video0")
    res = _block_as(sandbox, alice, "block", "camera")
    assert res.returncode == 0, res.stdout + res.stderr
    wait_until(lambda: len(keepers(alice.uid)) == 1, 30, "alice's keeper")
    # No tray runs: the keeper's guard ends alice's app that opens the camera (it may be
    # ended before it even says it opened, so it is not a UserHolder).
    late = subprocess.Popen([*setpriv(alice), SYSTEM_PYTHON, "-c", HOLDER, str(node)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=sandbox.root, env=sandbox.user_env(alice))
    sandbox.procs.append(late)
    # Ended by the guard (SIGTERM, SIGKILL after the grace), not by the test.
    assert late.wait(30) in (-signal.SIGTERM, -signal.SIGKILL)
    assert _block_as(sandbox, alice, "unblock", "camera").returncode == 0
    wait_until(lambda: not keepers(alice.uid), 30, "the keeper to exit after the unblock")
    after = UserHolder(sandbox, alice, [node])  # the camera is alice's again
    assert after.proc.poll() is None
    after.end()


def _block(until: float | None, guard: int | None = None) -> ActiveBlock:
    steps = (UndoStep(StepKind.USER_GUARD, str(guard)),) if guard is not None else ()
    return ActiveBlock(DeviceKind.CAMERA, 0.0, until, steps)


def test_a_keeper_is_needed_only_for_a_timed_or_guarding_block() -> None:
    assert not needs_keeper([], 1000)
    assert not needs_keeper([_block(None)], 1000)  # device-level, open-ended: nothing to do
    assert needs_keeper([_block(50.0)], 1000)
    assert needs_keeper([_block(None, guard=1000)], 1000)
    assert not needs_keeper([_block(None, guard=1001)], 1000)  # another account's guard


def test_the_keeper_wakes_for_the_next_end_or_to_look_again() -> None:
    assert next_wait([_block(130.0), _block(110.0)], 100.0) == 10.0
    assert next_wait([_block(None)], 100.0) == 60.0
    assert next_wait([_block(90.0)], 100.0) == 0.0
