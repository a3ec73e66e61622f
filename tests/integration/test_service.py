"""The system service for real: a root service subprocess, accounts made for the test, their
own processes holding stand-in cameras, and the CLI run as each account through setpriv."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from camguard.core.rules import make_rule
from camguard.store.rules import RuleFile
from tests import realenv
from tests.service_env import (
    ROOT,
    SYSTEM_PYTHON,
    Account,
    Accounts,
    Box,
    Service,
    UserHolder,
    camguard_as,
    pids_in_status,
    setpriv,
)

pytestmark = pytest.mark.real




def status_as(b: Box, who: Account) -> dict[str, object]:
    res = camguard_as(b, who, "status", "--json")
    assert res.returncode == 0, res.stderr
    doc: dict[str, object] = json.loads(res.stdout)
    return doc


def history_as(b: Box, who: Account) -> list[dict[str, object]]:
    res = camguard_as(b, who, "history", "--json")
    assert res.returncode == 0, res.stderr
    entries: list[dict[str, object]] = json.loads(res.stdout)
    return entries


def test_each_account_sees_only_its_own_sessions_and_an_admin_sees_all(
        sandbox: Box, accounts: Accounts) -> None:
    admins = accounts.group()
    alice, bob = accounts.user(), accounts.user()
    carol = accounts.user(groups=[admins])
    svc = Service(sandbox, admin_group=admins).start()
    a = UserHolder(sandbox, alice, [sandbox.node("video0")])
    b = UserHolder(sandbox, bob, [sandbox.node("video1")])
    realenv.wait_until(lambda: {a.pid, b.pid} <= pids_in_status(svc.client.status()), 20,
                       "both sessions in the service's status")

    assert pids_in_status(status_as(sandbox, alice)) == {a.pid}
    assert pids_in_status(status_as(sandbox, bob)) == {b.pid}
    assert pids_in_status(status_as(sandbox, carol)) == {a.pid, b.pid}
    assert status_as(sandbox, carol)["caller"] == {
        "uid": carol.uid, "gid": carol.gid, "user": carol.name, "admin": True}

    def sessions(entries: list[dict[str, object]]) -> set[tuple[object, object]]:
        return {(e["pid"], e["user"]) for e in entries if e["kind"] == "camera"}

    assert sessions(history_as(sandbox, alice)) == {(a.pid, alice.name)}
    assert sessions(history_as(sandbox, bob)) == {(b.pid, bob.name)}
    assert sessions(history_as(sandbox, carol)) == {(a.pid, alice.name), (b.pid, bob.name)}
    # The human table, too, shows alice nothing of bob's.
    table = camguard_as(sandbox, alice, "history").stdout
    assert alice.name[:12] in table and bob.name[:12] not in table
    res = camguard_as(sandbox, alice, "status")
    assert f"pid {a.pid}" in res.stdout and f"pid {b.pid}" not in res.stdout
    assert svc.stop() == 0


def test_watch_streams_only_the_callers_own_events(sandbox: Box, accounts: Accounts) -> None:
    alice, bob = accounts.user(), accounts.user()
    svc = Service(sandbox).start()
    watcher = subprocess.Popen(
        [*setpriv(alice), SYSTEM_PYTHON, "-m", "camguard", "watch", "--socket",
         str(sandbox.sock)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=sandbox.root, env=sandbox.user_env(alice))
    sandbox.procs.append(watcher)
    assert watcher.stdout is not None
    # Printed once the service has answered the watch request: subscribed from here on.
    assert watcher.stdout.readline().startswith("watching through the camguard service")
    b = UserHolder(sandbox, bob, [sandbox.node("video1")])
    realenv.wait_until(lambda: b.pid in pids_in_status(svc.client.status()), 20, "bob's use")
    a = UserHolder(sandbox, alice, [sandbox.node("video0")])
    lines = []
    while True:  # one hub, one order: had bob's event been sent, it would come first
        line = watcher.stdout.readline()
        assert line, f"watch ended: {watcher.stderr.read() if watcher.stderr else ''}"
        lines.append(line)
        if f"(pid {a.pid}," in line:
            break
    assert not any(f"pid {b.pid}" in x for x in lines)
    assert " started " in lines[-1] and alice.name in lines[-1]
    watcher.terminate()
    watcher.wait(10)
    assert svc.client.status()["ok"] is True


def test_kill_through_the_service_only_for_what_the_caller_may_end(
        sandbox: Box, accounts: Accounts) -> None:
    admins = accounts.group()
    alice, bob = accounts.user(), accounts.user()
    carol = accounts.user(groups=[admins])
    svc = Service(sandbox, admin_group=admins).start()
    a = UserHolder(sandbox, alice, [sandbox.node("video0")])
    b = UserHolder(sandbox, bob, [sandbox.node("video1")])
    realenv.wait_until(lambda: {a.pid, b.pid} <= pids_in_status(svc.client.status()), 20,
                       "both sessions")
    idle = subprocess.Popen([*setpriv(alice), "/bin/sleep", "600"], cwd=sandbox.root)
    sandbox.procs.append(idle)

    res = camguard_as(sandbox, alice, "kill", str(b.pid))
    assert res.returncode == 3 and "not yours" in res.stderr, res
    assert b.proc.poll() is None
    res = camguard_as(sandbox, carol, "kill", str(idle.pid))  # an admin, but no device use
    assert res.returncode == 3 and "uses no camera" in res.stderr, res
    assert idle.poll() is None

    res = camguard_as(sandbox, alice, "kill", str(a.pid))
    assert res.returncode == 0, res.stderr
    assert a.proc.wait(15) is not None
    res = camguard_as(sandbox, carol, "kill", str(b.pid), "--force")
    assert res.returncode == 0, res.stderr
    assert b.proc.wait(15) is not None
    res = camguard_as(sandbox, alice, "kill", "999999999")
    assert res.returncode in (2, 4), res  # argparse refuses >10 digits; a free pid is 4
    assert svc.alive()


def test_rules_are_enforced_for_every_account_and_an_admin_may_pause_them(
        sandbox: Box, accounts: Accounts) -> None:
    admins = accounts.group()
    kid = accounts.user()
    parent = accounts.user(groups=[admins])
    RuleFile(sandbox.config / "rules.json").save(
        [make_rule("kill", kind="camera", user=kid.name, label="no camera for the kid")])
    svc = Service(sandbox, admin_group=admins).start()
    h = UserHolder(sandbox, kid, [sandbox.node("video0")])
    assert h.proc.wait(20) is not None  # ended by the rule
    realenv.wait_until(lambda: any(e.get("decision") == "killed"
                                   for e in svc.client.history()["entries"]), 20,
                       "the decision to be recorded")
    entry = next(e for e in svc.client.history()["entries"] if e.get("pid") == h.pid)
    assert (entry["decision"], entry["decided_by"]) == ("killed", "rule:no camera for the kid")

    res = camguard_as(sandbox, kid, "pause", "--for", "15m")
    assert res.returncode == 3 and "admin" in res.stderr, res  # no lock set: admins only
    res = camguard_as(sandbox, parent, "pause", "--for", "15m")
    assert res.returncode == 0, res.stderr
    h2 = UserHolder(sandbox, kid, [sandbox.node("video0")])
    realenv.wait_until(lambda: h2.pid in pids_in_status(svc.client.status()), 20, "kid's use")
    res = camguard_as(sandbox, kid, "resume")  # being stricter needs nobody's permission
    assert res.returncode == 0, res.stderr
    assert h2.proc.poll() is None  # started while paused: left alone
    h3 = UserHolder(sandbox, kid, [sandbox.node("video1")])
    assert h3.proc.wait(20) is not None  # enforced again
    assert svc.client.rules()["rules"][0]["label"] == "no camera for the kid"


def test_a_second_service_on_the_same_folders_is_refused(sandbox: Box) -> None:
    svc = Service(sandbox).start()
    second = subprocess.run(
        [sys.executable, "-m", "camguard", "service", "--socket", str(sandbox.root / "2.sock"),
         "--policy-file", str(sandbox.policy)], capture_output=True, text=True, timeout=60,
        cwd=ROOT, env=sandbox.env(), check=False)
    assert second.returncode == 1
    assert f"another camguard service already uses {sandbox.data}" in second.stderr
    assert svc.alive() and svc.stop() == 0
