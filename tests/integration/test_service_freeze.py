"""Freeze while asking in the root service (issue 16): anyone's app is paused (SIGSTOP, as
root) while its account is asked, by the policy's ``freeze_while_asking`` or a ``freeze``
rule; the account's answer (``decide``, as the tray sends it) continues or ends it, and a
service that stops, or is SIGKILLed, never leaves it paused. A real root service
subprocess, an account made for the test, its process holding a stand-in camera."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import psutil
import pytest

from camguard.platform.linux.freeze import state_of
from tests import realenv
from tests.integration.test_service_decide import as_tray, session_of, usage_of
from tests.service_env import Accounts, Box, Service, UserHolder

pytestmark = pytest.mark.real

SETTING = "[settings]\nfreeze_while_asking = true\n"
RULE = "[[rules]]\nverdict = 'freeze'\ndevice = 'camera'\nlabel = 'pause cameras'\n"


def paused(svc: Service, b: Box, who: Any) -> tuple[UserHolder, dict[str, Any]]:
    """A process of ``who`` opens a camera; the service's decision says it is paused and
    it is stopped (state T)."""
    with svc.client.watch() as watch:
        held = UserHolder(b, who, [b.node("video0")])
        for doc in watch:
            if doc.get("event") == "decision" and doc.get("pid") == held.pid:
                break
    assert doc["paused"] is True, doc
    realenv.wait_until(lambda: state_of(held.pid) == "T", 10, "the holder stopped")
    return held, doc


def running(pid: int) -> bool:
    return state_of(pid) not in ("T", None)


def test_the_setting_pauses_anyones_app_until_its_owner_answers(
        sandbox: Box, accounts: Accounts) -> None:
    sandbox.policy.write_text(SETTING)
    alice = accounts.user()
    svc = Service(sandbox).start()
    held, doc = paused(svc, sandbox, alice)
    assert doc["verdict"] == "ask"
    journal = sandbox.state / "frozen.json"
    assert [e["pid"] for e in json.loads(journal.read_text())["frozen"]] == [held.pid]
    answer = as_tray(sandbox, alice, "decide", {**usage_of(svc, held.pid),
                                                "decision": "allowed-once",
                                                "decided_by": "user:popup (frozen)"})
    assert answer["ok"] is True, answer
    realenv.wait_until(lambda: running(held.pid), 10, "the holder continued")
    assert session_of(svc, held.pid)["decided_by"] == "user:popup (frozen)"
    assert not journal.exists()


def test_a_freeze_rule_pauses_it_and_kill_ends_it(sandbox: Box, accounts: Accounts) -> None:
    sandbox.policy.write_text(RULE)  # the setting is off
    alice = accounts.user()
    svc = Service(sandbox).start()
    held, doc = paused(svc, sandbox, alice)
    assert doc["verdict"] == "freeze"
    assert doc["explanation"] == "paused while asking by rule 'pause cameras' (policy)"
    as_tray(sandbox, alice, "decide", {**usage_of(svc, held.pid), "decision": "killed",
                                       "decided_by": "timeout (frozen)"})
    assert held.proc.wait(10) == -signal.SIGTERM  # pending while stopped, then delivered


def test_a_stopped_or_killed_service_leaves_nothing_paused(
        sandbox: Box, accounts: Accounts) -> None:
    sandbox.policy.write_text(SETTING)
    alice = accounts.user()
    svc = Service(sandbox).start()
    first, _doc = paused(svc, sandbox, alice)
    assert svc.stop() == 0  # SIGTERM: the service continues what it paused
    realenv.wait_until(lambda: running(first.pid), 10, "continued on stop")
    first.end()

    svc = Service(sandbox).start()
    second, _doc = paused(svc, sandbox, alice)
    assert svc.proc is not None
    [dog] = [p for p in psutil.Process(svc.proc.pid).children()
             if "freeze-watchdog" in p.cmdline()]
    svc.kill()  # SIGKILL: nothing runs in the service; its watchdog sees the pipe close
    realenv.wait_until(lambda: running(second.pid), 10, "continued by the watchdog")
    dog.wait(10)
    second.end()

    # Both the service and its watchdog killed: the next start continues the journal.
    svc = Service(sandbox).start()
    third, _doc = paused(svc, sandbox, alice)
    assert svc.proc is not None
    [dog] = [p for p in psutil.Process(svc.proc.pid).children()
             if "freeze-watchdog" in p.cmdline()]
    os.kill(dog.pid, signal.SIGKILL)
    svc.kill()
    assert state_of(third.pid) == "T"
    # (Started with the setting on, the new service would ask, and pause, again.)
    sandbox.policy.write_text("")
    Service(sandbox).start()
    realenv.wait_until(lambda: running(third.pid), 10, "continued at the next start")
