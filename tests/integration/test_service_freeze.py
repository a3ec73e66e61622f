"""Freeze while asking in the root service (issue 16): anyone's app is paused (SIGSTOP, as
root) while its account is asked, by the policy's ``freeze_while_asking`` or a ``freeze``
rule; the account's answer (``decide``, as the tray sends it) continues or ends it, and a
service that stops, or is SIGKILLed, never leaves it paused. Only while someone can answer:
a tray of that account (the tray's own client code, run as the account) watching with
``answers`` and its alerts not paused; with none, or when it pauses its alerts or goes,
the app is not paused, or let go at once, and the history's note says why. A real root
service subprocess, accounts made for the test, their processes holding a stand-in
camera."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

import psutil
import pytest

from camguard.platform.linux.freeze import state_of
from tests import realenv
from tests.integration.test_service_decide import as_tray, session_of, usage_of
from tests.service_env import SYSTEM_PYTHON, Account, Accounts, Box, Service, UserHolder, setpriv

pytestmark = pytest.mark.real

SETTING = "[settings]\nfreeze_while_asking = true\n"
RULE = "[[rules]]\nverdict = 'freeze'\ndevice = 'camera'\nlabel = 'pause cameras'\n"


# Run as an account: the tray's own service-mode objects over the real client (the feed's
# watch with ``answers``, ServiceAsking for its pause and resume), driven line by line.
_TRAY = """
import sys
from pathlib import Path
from camguard.app.guard_service import ServiceGuard, service_client
from camguard.app.service_asking import ServiceAsking

guard = ServiceGuard(service_client(Path(sys.argv[1])))
asking = ServiceAsking(guard)
watch = guard.watch(answers=asking.answers())
print("watching", flush=True)
for line in sys.stdin:
    asking.paused(line.strip() == "pause")
    print("done", flush=True)
"""


class Tray:
    """A tray of ``who`` connected to the service (its watch answers until paused)."""

    def __init__(self, b: Box, who: Account) -> None:
        home = b.root / "home" / who.name
        home.mkdir(mode=0o755, exist_ok=True)
        os.chown(home, who.uid, who.gid)
        self.proc = subprocess.Popen([*setpriv(who), SYSTEM_PYTHON, "-c", _TRAY, str(b.sock)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=home, env=b.user_env(who))
        assert self._line() == "watching"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line, f"the tray stand-in ended: {self.proc.wait(10)}"
        return line

    def say(self, what: str) -> None:
        """``pause`` or ``resume`` its alerts; returns once the service has answered."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        assert self._line() == "done"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def decided(svc: Service, b: Box, who: Any) -> tuple[UserHolder, dict[str, Any]]:
    """A process of ``who`` opens a camera; the service's decision about it (announced
    once the service has paused it, or decided not to)."""
    with svc.client.watch() as watch:  # root's, as `camguard watch`: it answers nothing
        held = UserHolder(b, who, [b.node("video0")])
        for doc in watch:
            if doc.get("event") == "decision" and doc.get("pid") == held.pid:
                return held, doc
    raise AssertionError("the watch ended")


def paused(svc: Service, b: Box, who: Any) -> tuple[UserHolder, dict[str, Any]]:
    """A process of ``who`` opens a camera; the service's decision says it is paused and
    it is stopped (state T). A tray of ``who`` must be connected."""
    held, doc = decided(svc, b, who)
    assert doc["paused"] is True, doc
    assert isinstance(doc["paused_until"], float) and doc["paused_until"] > 0, doc
    realenv.wait_until(lambda: state_of(held.pid) == "T", 10, "the holder stopped")
    return held, doc


def running(pid: int) -> bool:
    return state_of(pid) not in ("T", None)


def test_the_setting_pauses_anyones_app_until_its_owner_answers(
        sandbox: Box, accounts: Accounts) -> None:
    sandbox.policy.write_text(SETTING)
    alice = accounts.user()
    svc = Service(sandbox).start()
    tray = Tray(sandbox, alice)
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
    tray.close()


def test_a_freeze_rule_pauses_it_and_kill_ends_it(sandbox: Box, accounts: Accounts) -> None:
    sandbox.policy.write_text(RULE)  # the setting is off
    alice = accounts.user()
    svc = Service(sandbox).start()
    Tray(sandbox, alice)
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
    Tray(sandbox, alice)
    first, _doc = paused(svc, sandbox, alice)
    assert svc.stop() == 0  # SIGTERM: the service continues what it paused
    realenv.wait_until(lambda: running(first.pid), 10, "continued on stop")
    first.end()

    svc = Service(sandbox).start()
    Tray(sandbox, alice)  # the tray reconnects to each new service
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
    Tray(sandbox, alice)
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


NOBODY = "not paused while asking: no camguard tray that answers for {} is connected"


def test_with_no_tray_of_that_account_nothing_is_paused_and_the_history_says_why(
        sandbox: Box, accounts: Accounts) -> None:
    """Nobody could answer: no tray at all (root's ``watch`` answers nothing), then only
    another account's tray. The app runs, and its session's note says why."""
    sandbox.policy.write_text(RULE)
    alice, bob = accounts.user(), accounts.user()
    svc = Service(sandbox).start()
    held, doc = decided(svc, sandbox, alice)
    assert (doc["verdict"], doc["paused"], doc["paused_until"]) == ("freeze", False, None)
    assert running(held.pid)  # decided (and announced) after the freeze was not made
    assert session_of(svc, held.pid)["note"] == NOBODY.format(alice.name)
    assert not (sandbox.state / "frozen.json").exists()
    held.end()
    bobs = Tray(sandbox, bob)  # bob's tray cannot see, nor answer for, alice's apps
    again, doc = decided(svc, sandbox, alice)
    assert doc["paused"] is False and running(again.pid)
    assert session_of(svc, again.pid)["note"] == NOBODY.format(alice.name)
    held, doc = paused(svc, sandbox, bob)  # ...but bob's own: he answers
    bobs.close()


def test_pausing_the_trays_alerts_lets_the_app_go_at_once(sandbox: Box,
                                                          accounts: Accounts) -> None:
    """The tray's user pauses camguard while the service holds an app for its answer: the
    tray says so (``asking`` off) and the service continues the app at once (not at the
    limit, 120 s), notes why, and pauses nothing more until the tray resumes."""
    sandbox.policy.write_text(SETTING)
    alice = accounts.user()
    svc = Service(sandbox).start()
    tray = Tray(sandbox, alice)
    held, _doc = paused(svc, sandbox, alice)
    tray.say("pause")
    realenv.wait_until(lambda: running(held.pid), 10, "let go when the alerts paused")
    realenv.wait_until(lambda: not (sandbox.state / "frozen.json").exists(), 10,
                       "the journal emptied")
    # The history's note is written after the app is continued: waited for, not assumed.
    realenv.wait_until(lambda: bool(session_of(svc, held.pid)["note"]), 10, "the note")
    note = session_of(svc, held.pid)["note"]
    assert note == ("let go while asking: no camguard tray that answers for "
                    f"{alice.name} is connected now"), note
    while_paused, doc = decided(svc, sandbox, alice)
    assert doc["paused"] is False and running(while_paused.pid)
    tray.say("resume")
    paused(svc, sandbox, alice)  # asked, and paused, again
    tray.close()


def test_a_tray_that_goes_away_lets_its_app_go_at_once(sandbox: Box,
                                                       accounts: Accounts) -> None:
    sandbox.policy.write_text(SETTING)
    alice = accounts.user()
    svc = Service(sandbox).start()
    tray = Tray(sandbox, alice)
    held, _doc = paused(svc, sandbox, alice)
    tray.close()  # SIGKILLed: its watch connection closes
    realenv.wait_until(lambda: running(held.pid), 10, "let go when its tray went")
    realenv.wait_until(lambda: "let go while asking" in (session_of(svc, held.pid)["note"]
                                                         or ""), 10, "the note")
