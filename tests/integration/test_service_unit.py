"""Who may see and end what (pure checks over real core objects), and the systemd unit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from camguard.core.blocks import ActiveBlock, BlockOptions
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.core.state import GuardState
from camguard.service.authorization import (
    Caller,
    Target,
    block_end_refusal,
    block_refusal,
    can_see,
    history_users,
    kill_permission,
    unblock_kinds,
    unblock_refusal,
    visible_state,
)
from tests.conftest import need_tools

UNIT = Path(__file__).resolve().parents[2] / "resources" / "systemd" / "camguard.service"
CAM = Device(DeviceKind.CAMERA, "/dev/video0")
ALICE = Caller(uid=1001, gid=1001, pid=50, name="alice", admin=False)
ADMIN = Caller(uid=1003, gid=1003, pid=52, name="carol", admin=True)
ROOT = Caller(uid=0, gid=0, pid=53, name="root", admin=True)
MINE = Usage(CAM, ProcessRef(10, 5.0, "zoom", user="alice"))
THEIRS = Usage(CAM, ProcessRef(11, 6.0, "rec", user="bob"))
UNSEEN = Usage(CAM, None, "in use by a process camguard cannot see")
STATE = GuardState((CAM,), (MINE, THEIRS, UNSEEN),
                   first_seen={MINE.key: 1.0, THEIRS.key: 2.0, UNSEEN.key: 3.0})
PROCS = {10: Target(10, 5.0, 1001), 11: Target(11, 6.0, 1002), 12: Target(12, 7.0, 1002),
         13: Target(13, 8.0, 1001)}


def test_a_user_sees_own_usages_only_and_unseen_ones_are_for_admins() -> None:
    assert visible_state(ALICE, STATE).usages == (MINE,)
    assert visible_state(ALICE, STATE).first_seen == {MINE.key: 1.0}
    assert visible_state(ALICE, STATE).devices == (CAM,)
    assert visible_state(ADMIN, STATE).usages == STATE.usages
    assert not can_see(ALICE, UNSEEN) and can_see(ADMIN, UNSEEN)
    numeric = Caller(uid=4242, gid=4242, pid=1, name="4242", admin=False)
    assert can_see(numeric, Usage(CAM, ProcessRef(9, 1.0, user="4242")))  # no passwd entry
    assert not can_see(ALICE, Usage(CAM, ProcessRef(9, 1.0, user="")))


def test_whose_history_a_query_returns() -> None:
    assert history_users(ALICE, None) == {"alice", "1001"}
    assert history_users(ADMIN, None) is None
    assert history_users(ADMIN, "bob") == {"bob"}


@pytest.mark.parametrize(("caller", "pid", "ctime", "allowed"), [
    (ALICE, 10, None, True),  # her own device user
    (ALICE, 13, None, True),  # her own process (kill(2) would let her anyway)
    (ALICE, 11, None, "not yours"),
    (ALICE, 10, 99.0, "different process"),  # the pid was reused
    (ALICE, 77, None, "no process"),
    (ADMIN, 11, None, True),  # another account's, but it uses the camera
    (ADMIN, 12, None, "uses no camera"),  # another account's, no device: not camguard's job
    (ROOT, 12, None, True),
])
def test_who_may_end_which_process(caller: Caller, pid: int, ctime: float | None,
                                   allowed: bool | str) -> None:
    got = kill_permission(caller, pid, ctime, STATE, PROCS.get)
    if allowed is True:
        assert got == PROCS[pid]
    else:
        assert isinstance(got, str) and str(allowed) in got


BOTH = (DeviceKind.CAMERA, DeviceKind.MICROPHONE)
PLAIN = BlockOptions()


def test_who_may_block_for_everyone() -> None:
    def refusal(caller: Caller, usages: tuple[Usage, ...], *, users: bool = True,
                options: BlockOptions = PLAIN) -> str | None:
        return block_refusal(caller, BOTH, options, usages, users_may_block=users,
                             admin_group="adm")

    assert refusal(ADMIN, STATE.usages) is None  # an admin blocks over anyone's use
    assert refusal(ALICE, (MINE,)) is None  # her own use only: she may
    why = refusal(ALICE, STATE.usages)
    assert why is not None and "another account (a process camguard cannot see, bob)" in why
    assert "users_may_block" in str(refusal(ALICE, (), users=False))
    assert "--persistent" in str(refusal(ALICE, (), options=BlockOptions(persistent=True)))


def test_a_users_block_ends_only_the_users_own_programs() -> None:
    # Checked for each holder the block meets, after the first check (a late opener).
    assert block_end_refusal(ALICE, 10, 5.0, PROCS.get) is None
    assert "belongs to another account" in str(block_end_refusal(ALICE, 11, 6.0, PROCS.get))
    assert block_end_refusal(ALICE, 11, 99.0, PROCS.get) is None  # gone: nothing to end
    assert block_end_refusal(ADMIN, 11, 6.0, PROCS.get) is None


def test_who_may_lift_which_block() -> None:
    hers = ActiveBlock(DeviceKind.CAMERA, 1.0, None, owner=ALICE.uid)
    admins = ActiveBlock(DeviceKind.MICROPHONE, 1.0, None)
    blocks = [hers, admins]
    assert unblock_refusal(ALICE, blocks, (DeviceKind.CAMERA,), unlocked=False,
                           admin_group="adm") is None
    why = unblock_refusal(ALICE, blocks, BOTH, unlocked=False, admin_group="adm")
    assert why is not None and "the microphone block was made by an admin" in why
    assert unblock_refusal(ALICE, blocks, BOTH, unlocked=True, admin_group="adm") is None
    assert unblock_kinds(ALICE, [hers], BOTH, unlocked=False) == {DeviceKind.CAMERA}
    assert unblock_kinds(ADMIN, [], BOTH, unlocked=False) == set(BOTH)


def test_the_system_unit_is_hardened_yet_reaches_proc_and_dev() -> None:
    lines = [ln for ln in UNIT.read_text().splitlines() if not ln.startswith("#")]
    for line in ("NoNewPrivileges=yes", "ProtectHome=read-only", "ProtectSystem=strict",
                 "RuntimeDirectory=camguard", "RuntimeDirectoryMode=0755",
                 "StateDirectory=camguard", "StateDirectoryMode=0700",
                 "ExecStart=/usr/bin/camguard service", "KillSignal=SIGTERM"):
        assert line in lines, line
    for forbidden in ("PrivateDevices", "ProtectProc", "ProtectKernelTunables", "User="):
        assert not any(ln.startswith(forbidden) for ln in lines), forbidden


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    need_tools(["systemd-analyze"])
    # Verify everything but the not-yet-installed executable.
    unit = tmp_path / "camguard.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/camguard", shutil.which("true") or
                                             "/bin/true"))
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60, check=False)
    bad = [ln for ln in res.stderr.splitlines() if "camguard.service" in ln]
    assert res.returncode == 0 and not bad, res.stderr
