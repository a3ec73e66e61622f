"""The parental lock for real: kept by the root service, a kid's account cannot unblock or
pause without the password, and the back-off holds across CLI runs and service restarts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service_env import ROOT, Accounts, Box, Service, camguard_as

pytestmark = pytest.mark.real
PASSWORD = "hunter2 \u00e9t\u00e9"  # noqa: S105 - a test password, with non-ASCII




def as_root(b: Box, *args: str, stdin: str = "", socket: bool = True
            ) -> subprocess.CompletedProcess[str]:
    extra = ["--socket", str(b.sock)] if socket else []
    env = {**b.env(), "CAMGUARD_SOCKET": str(b.root / "no-service.sock")}
    return subprocess.run([sys.executable, "-m", "camguard", *args, *extra], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
                          check=False)


def mode(node: Path) -> int:
    return stat.S_IMODE(os.stat(node).st_mode)


def test_a_kid_cannot_unblock_or_pause_without_the_password_and_guessing_backs_off(
        sandbox: Box, accounts: Accounts) -> None:
    admins = accounts.group()
    kid, parent = accounts.user(), accounts.user(groups=[admins])
    svc = Service(sandbox, admin_group=admins, lock_backoff=120).start()
    node = sandbox.node("video0")
    res = as_root(sandbox, "lock", "set-password", "--password-stdin", stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    lock_file = sandbox.data / "lock.json"
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600 and lock_file.stat().st_uid == 0
    assert PASSWORD.encode() not in lock_file.read_bytes()
    res = camguard_as(sandbox, parent, "block", "camera")
    assert res.returncode == 0, res.stderr
    assert mode(node) == 0

    res = camguard_as(sandbox, kid, "unblock", "camera")  # no terminal, no --password-stdin
    assert res.returncode == 3 and "needs the parental-lock password" in res.stderr, res
    res = camguard_as(sandbox, kid, "pause", "--for", "1h")
    assert res.returncode == 3 and "password" in res.stderr, res
    res = camguard_as(sandbox, kid, "unblock", "camera", "--password-stdin", stdin="guess\n")
    assert res.returncode == 3 and "wrong password; try again in 120 s" in res.stderr, res
    # A new CLI run with the right password: still waiting, so not even tried.
    res = camguard_as(sandbox, kid, "unblock", "camera", "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert res.returncode == 3 and "too many wrong passwords" in res.stderr, res
    res = camguard_as(sandbox, kid, "pause", "--password-stdin", stdin=PASSWORD + "\n")
    assert res.returncode == 3 and "too many wrong passwords" in res.stderr, res
    status = json.loads(camguard_as(sandbox, kid, "lock", "status", "--json").stdout)
    assert status["set"] is True and status["failures"] == 1 and status["retry_after"] > 0
    res = camguard_as(sandbox, kid, "lock", "clear", "--password-stdin", stdin="x\n")
    assert res.returncode == 3 and "only an admin" in res.stderr, res
    assert svc.proc is not None  # nor can the kid end the enforcer itself
    res = camguard_as(sandbox, kid, "kill", str(svc.proc.pid))
    assert res.returncode == 3 and svc.alive(), res

    assert svc.stop() == 0  # the back-off is in the service's files, not its memory
    svc = Service(sandbox, admin_group=admins, lock_backoff=120).start()
    res = camguard_as(sandbox, kid, "unblock", "camera", "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert res.returncode == 3 and "too many wrong passwords" in res.stderr, res
    assert mode(node) == 0
    assert svc.client.status()["paused"] is False
    # Root needs no password (it could rewrite the files anyway).
    res = as_root(sandbox, "unblock", "camera")
    assert res.returncode == 0, res.stderr
    assert mode(node) == 0o666


def test_a_kids_wrong_guesses_never_lock_the_parent_out(sandbox: Box,
                                                          accounts: Accounts) -> None:
    admins = accounts.group()
    kid, parent = accounts.user(), accounts.user(groups=[admins])
    Service(sandbox, admin_group=admins, lock_backoff=120).start()
    node = sandbox.node("video0")
    assert as_root(sandbox, "lock", "set-password", "--password-stdin",
                   stdin=PASSWORD + "\n").returncode == 0
    assert camguard_as(sandbox, parent, "block", "camera").returncode == 0
    for _ in range(2):  # a wrong guess, then the right one during the wait: both refused
        res = camguard_as(sandbox, kid, "unblock", "camera", "--password-stdin",
                          stdin="guess\n")
        assert res.returncode == 3 and mode(node) == 0, res
    status = json.loads(camguard_as(sandbox, parent, "lock", "status", "--json").stdout)
    assert status["failures"] == 0 and status["retry_after"] == 0  # the parent's own count
    res = camguard_as(sandbox, parent, "unblock", "camera", "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    assert mode(node) == 0o666
    res = camguard_as(sandbox, kid, "unblock", "camera", "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert res.returncode == 3 and "too many wrong passwords" in res.stderr, res  # still


def test_with_the_password_a_kid_may_unblock_and_pause(sandbox: Box,
                                                        accounts: Accounts) -> None:
    kid = accounts.user()
    svc = Service(sandbox, lock_backoff=120).start()
    node = sandbox.node("video0")
    assert as_root(sandbox, "lock", "set-password", "--password-stdin",
                   stdin=PASSWORD + "\n").returncode == 0
    assert as_root(sandbox, "block", "camera").returncode == 0
    assert mode(node) == 0
    res = camguard_as(sandbox, kid, "unblock", "camera", "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    assert mode(node) == 0o666
    res = camguard_as(sandbox, kid, "pause", "--for", "15m", "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    paused = svc.client.status()
    assert paused["paused"] is True and paused["paused_until"] is not None
    assert camguard_as(sandbox, kid, "resume").returncode == 0
    assert svc.client.status()["paused"] is False


def test_without_the_service_the_cli_asks_for_the_local_lock_and_remembers_misses(
        sandbox: Box) -> None:
    cams = str(sandbox.dev / "video*")
    res = as_root(sandbox, "lock", "set-password", "--password-stdin", stdin="pw\n",
                  socket=False)
    assert res.returncode == 0, res.stderr
    local = sandbox.config / "lock.json"
    assert local.exists() and b"pw" not in local.read_bytes().replace(b'"p"', b"")
    res = as_root(sandbox, "unblock", "camera", "--camera-glob", cams, socket=False)
    assert res.returncode == 3 and "password" in res.stderr, res
    res = as_root(sandbox, "unblock", "camera", "--camera-glob", cams, "--password-stdin",
                  stdin="pw\n", socket=False)
    assert res.returncode == 0, res.stderr
    res = as_root(sandbox, "unblock", "camera", "--camera-glob", cams, "--password-stdin",
                  stdin="nope\n", socket=False)
    assert res.returncode == 3 and "wrong password" in res.stderr, res
    res = as_root(sandbox, "lock", "status", "--json", socket=False)
    status = json.loads(res.stdout)
    assert status["set"] is True and status["failures"] == 1  # kept by a separate run
    assert json.loads(local.read_bytes())["next_allowed"] > 0
