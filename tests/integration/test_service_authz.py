"""The kill switch's authorization for real (docs/security.md): a root service subprocess,
accounts made for the test, their own processes holding stand-in cameras, and the CLI run
as each account. A child's ``block all`` must not end the parent's call; an ordinary
account cannot lift an admin's block; its own block ends only its own programs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from camguard.app.service_parts import GatedKiller, SerialBlocks
from camguard.core.blocks import BlockManager, BlockTarget
from camguard.core.settings import DEFAULT_SOUND_SERVER_EXES
from camguard.platform.clock import SystemClock
from camguard.platform.linux.block import LinuxBlocker
from camguard.platform.linux.helper_runner import InProcessHelper
from camguard.platform.linux.kill import Killer
from camguard.service.authorization import Caller, block_end_refusal
from camguard.store.blocks import JsonBlockStore
from tests import realenv
from tests.service_env import (
    Accounts,
    Box,
    Service,
    UserHolder,
    camguard_as,
    pids_in_status,
    raw_as,
)

pytestmark = pytest.mark.real


def mode(node: Path) -> int:
    return stat.S_IMODE(os.stat(node).st_mode)


def test_a_childs_block_all_is_refused_while_the_parent_is_on_a_call(
        sandbox: Box, accounts: Accounts) -> None:
    admins = accounts.group()
    kid, parent = accounts.user(), accounts.user(groups=[admins])
    svc = Service(sandbox, admin_group=admins).start()
    assert svc.client.lock_set("parent's secret")["ok"] is True  # as in the attack
    node = sandbox.node("video0")
    call = UserHolder(sandbox, parent, [node])
    realenv.wait_until(lambda: call.pid in pids_in_status(svc.client.status()), 20,
                       "the parent's call in the service's status")

    res = camguard_as(sandbox, kid, "block", "all")
    assert res.returncode == 3, res
    assert f"in use by another account ({parent.name})" in res.stderr, res.stderr
    assert call.proc.poll() is None  # the call goes on
    assert mode(node) == 0o666  # and the camera was not closed under it
    assert svc.client.blocks()["blocks"] == []
    res = camguard_as(sandbox, kid, "block", "camera", "--persistent")
    assert res.returncode == 3 and "only an admin" in res.stderr, res
    assert call.proc.poll() is None and svc.alive()


def test_an_ordinary_account_cannot_lift_an_admins_block(sandbox: Box,
                                                         accounts: Accounts) -> None:
    admins = accounts.group()
    kid, parent = accounts.user(), accounts.user(groups=[admins])
    svc = Service(sandbox, admin_group=admins).start()
    node = sandbox.node("video0")
    res = camguard_as(sandbox, parent, "block", "camera")
    assert res.returncode == 0, res.stderr
    assert mode(node) == 0

    res = camguard_as(sandbox, kid, "unblock", "camera")  # no parental lock is set
    assert res.returncode == 3 and "made by an admin" in res.stderr, res
    assert mode(node) == 0
    # Nor can a short block of the kid's own end the admin's open-ended one early.
    res = camguard_as(sandbox, kid, "block", "camera", "--for", "1m")
    assert res.returncode == 0, res.stderr
    [blk] = svc.client.blocks()["blocks"]
    assert blk["until"] is None
    res = camguard_as(sandbox, kid, "unblock", "all")
    assert res.returncode == 3 and mode(node) == 0, res
    res = camguard_as(sandbox, parent, "unblock", "camera")
    assert res.returncode == 0, res.stderr
    assert mode(node) == 0o666


def test_an_ordinary_accounts_block_ends_its_own_programs_and_only_it_lifts_it(
        sandbox: Box, accounts: Accounts) -> None:
    alice, bob = accounts.user(), accounts.user()
    svc = Service(sandbox).start()
    node = sandbox.node("video0")
    mine = UserHolder(sandbox, alice, [node])
    realenv.wait_until(lambda: mine.pid in pids_in_status(svc.client.status()), 20,
                       "alice's use")
    res = camguard_as(sandbox, alice, "block", "camera")
    assert res.returncode == 0, res.stderr
    assert mine.proc.wait(15) is not None  # her own program was ended
    assert mode(node) == 0
    res = camguard_as(sandbox, bob, "unblock", "camera")
    assert res.returncode == 3 and "another account" in res.stderr, res
    assert mode(node) == 0
    res = camguard_as(sandbox, alice, "unblock", "camera")
    assert res.returncode == 0, res.stderr
    assert mode(node) == 0o666
    assert svc.alive()


def test_a_managed_policy_can_keep_blocking_for_admins(sandbox: Box,
                                                      accounts: Accounts) -> None:
    alice = accounts.user()
    sandbox.policy.write_text("[settings]\nusers_may_block = false\n")
    svc = Service(sandbox).start()
    node = sandbox.node("video0")
    [line] = raw_as(sandbox, alice, b'{"op":"block","target":"camera"}\n')
    answer = json.loads(line)
    assert answer["code"] == "denied" and "users_may_block = false" in answer["error"]
    assert mode(node) == 0o666
    assert svc.client.block("camera")["ok"] is True  # root still may
    assert mode(node) == 0


def test_a_users_block_leaves_a_late_opener_of_another_account_running(
        sandbox: Box, accounts: Accounts) -> None:
    """Another account's program that opened the device after the service looked (so the
    block was not refused) is met by the block itself: it is left running and reported."""
    alice, bob = accounts.user(), accounts.user()
    node = sandbox.node("video0")
    mine = UserHolder(sandbox, alice, [node])
    late = UserHolder(sandbox, bob, [node])
    sandbox.state.mkdir(mode=0o700, exist_ok=True)
    gate = GatedKiller(Killer(DEFAULT_SOUND_SERVER_EXES))
    glob = str(sandbox.dev / "video*")
    helper = InProcessHelper((glob,), str(sandbox.state / "helper-nodes.json"))
    blocks = SerialBlocks(BlockManager(SystemClock(), JsonBlockStore(sandbox.state / "b.json"),
                                       LinuxBlocker((glob,), (), helper=helper, killer=gate)),
                          gate)
    caller = Caller(alice.uid, alice.gid, 1, alice.name, admin=False)
    report = blocks.block(BlockTarget.CAMERA, None, owner=alice.uid,
                          may_end=lambda pid, ctime: block_end_refusal(caller, pid, ctime))
    assert mine.proc.wait(15) is not None  # hers ended
    assert late.proc.poll() is None  # bob's left running, and said so
    assert f"left pid {late.pid} running: it belongs to another account" in \
        report.result.message, report.result.message
    assert gate.check is None  # the next block (an admin's, the rules') is not limited
    [blk], _problems = blocks.active()
    assert blk.owner == alice.uid
    assert blocks.unblock(BlockTarget.CAMERA).result.ok
    assert mode(node) == 0o666
