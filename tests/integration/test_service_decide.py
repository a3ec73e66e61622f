"""In service mode the service's history is the history: a person's answer to an alert
(Kill, Allow once, Always allow, Block) is recorded there (``decide``), and the account's
own rules are enforced there (``user-rules``), each only for that account. A real root
service subprocess, accounts made for the test, their processes holding stand-in cameras,
and the tray's own client code (ServiceDecisions, ServiceRuleFile) run as each account."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camguard.core.rules import make_rule
from camguard.core.rules_json import rules_to_json
from camguard.service.protocol import MAX_ACCOUNT_RULES
from tests import realenv
from tests.service_env import (
    SYSTEM_PYTHON,
    Account,
    Accounts,
    Box,
    Service,
    UserHolder,
    camguard_as,
    raw_as,
    setpriv,
)

pytestmark = pytest.mark.real

# Run as an account: the tray's own objects over the real client, one JSON answer printed.
_AS_TRAY = """
import json, sys
from pathlib import Path
from camguard.app.guard_service import ServiceGuard
from camguard.app.service_feed import ServiceDecisions, ServiceRuleFile
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.app.guard_service import service_client

sock, what, arg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
guard = ServiceGuard(service_client(Path(sock)))
if what == "decide":
    usage = Usage(Device(DeviceKind(arg["kind"]), arg["device"]),
                  ProcessRef(arg["pid"], arg["create_time"], "", "", (), "", ()))
    ServiceDecisions(guard).record_decision(usage, arg["decision"], arg["decided_by"])
    print(json.dumps(guard.decide(usage, arg["decision"], arg["decided_by"])))
else:
    path = Path(arg["path"])
    path.write_text(json.dumps(arg["doc"]))
    ServiceRuleFile(guard, path).send()
    print(json.dumps(guard.send_own_rules(ServiceRuleFile(guard, path).load())))
"""


def as_tray(b: Box, who: Account, what: str, arg: dict[str, Any]) -> dict[str, Any]:
    home = b.root / "home" / who.name
    home.mkdir(mode=0o755, exist_ok=True)
    os.chown(home, who.uid, who.gid)
    res = subprocess.run([*setpriv(who), SYSTEM_PYTHON, "-c", _AS_TRAY, str(b.sock), what,
                          json.dumps(arg)], capture_output=True, text=True, timeout=60,
                         cwd=home, env=b.user_env(who), check=False)
    assert res.returncode == 0, res.stderr
    answer: dict[str, Any] = json.loads(res.stdout.splitlines()[-1])
    return answer


def send(b: Box, who: Account, request: dict[str, Any]) -> dict[str, Any]:
    [line] = raw_as(b, who, (json.dumps(request) + "\n").encode())
    answer: dict[str, Any] = json.loads(line)
    return answer


def usage_of(svc: Service, pid: int) -> dict[str, Any]:
    """The service's status entry for ``pid``'s use (root sees every account's)."""
    for d in svc.client.status()["devices"]:
        for u in d["users"]:
            if u["pid"] == pid:
                return {"kind": d["kind"], "device": d["id"], "pid": pid,
                        "create_time": u["create_time"]}
    raise AssertionError(f"pid {pid} is not in the service's status")


def session_of(svc: Service, pid: int) -> dict[str, Any]:
    [entry] = [e for e in svc.client.history()["entries"] if e.get("pid") == pid]
    return entry


def decision_for(svc: Service, start: Callable[[], UserHolder]) -> tuple[UserHolder, str]:
    """Start a holder with ``start`` while watching; the verdict the service's rules gave
    its use (every started use is decided and announced, "ask" included)."""
    with svc.client.watch() as watch:
        held = start()
        for doc in watch:
            if doc.get("event") == "decision" and doc.get("pid") == held.pid:
                return held, str(doc["verdict"])
    raise AssertionError("the watch ended before the decision")


def mode(node: Path) -> int:
    return stat.S_IMODE(os.stat(node).st_mode)


def test_a_persons_answer_is_recorded_in_the_services_history_only_by_its_owner(
        sandbox: Box, accounts: Accounts) -> None:
    alice, bob = accounts.user(), accounts.user()
    svc = Service(sandbox).start()
    held = UserHolder(sandbox, alice, [sandbox.node("video0")])
    realenv.wait_until(lambda: any(u["pid"] == held.pid for d in
                                   svc.client.status()["devices"] for u in d["users"]),
                       20, "alice's use in the service's status")
    usage = usage_of(svc, held.pid)

    # Bob may not answer for alice's session, and is told what he would be told about a
    # session that does not exist.
    theirs = send(sandbox, bob, {"op": "decide", **usage, "decision": "killed",
                                 "decided_by": "user:popup"})
    nowhere = send(sandbox, bob, {"op": "decide", **usage, "pid": held.pid + 1,
                                  "decision": "killed", "decided_by": "user:popup"})
    assert theirs["ok"] is False and theirs["code"] == "denied", theirs
    assert theirs["error"] == nowhere["error"]
    assert session_of(svc, held.pid)["decision"] is None

    # Alice's tray (its HistoryPort in service mode) records her answer there.
    answer = as_tray(sandbox, alice, "decide", {**usage, "decision": "allowed-once",
                                                "decided_by": "user:popup"})
    assert answer["ok"] is True, answer
    entry = session_of(svc, held.pid)
    assert (entry["decision"], entry["decided_by"]) == ("allowed-once", "user:popup")
    # `camguard history` of alice (the service's rows) shows the same row, once.
    mine = send(sandbox, alice, {"op": "history"})["entries"]
    assert [(e["pid"], e["decision"]) for e in mine if e.get("pid") is not None] == \
        [(held.pid, "allowed-once")]

    # After the app stopped, her later answer still lands on that session.
    held.end()
    realenv.wait_until(lambda: session_of(svc, held.pid)["end"] is not None, 20,
                       "the session to end")
    assert as_tray(sandbox, alice, "decide", {**usage, "decision": "killed",
                                              "decided_by": "user:tray"})["ok"] is True
    assert session_of(svc, held.pid)["decision"] == "killed"


def test_decide_takes_only_the_one_vocabulary_and_bounded_fields(
        sandbox: Box, accounts: Accounts) -> None:
    alice = accounts.user()
    svc = Service(sandbox).start()
    held = UserHolder(sandbox, alice, [sandbox.node("video0")])
    realenv.wait_until(lambda: any(u["pid"] == held.pid for d in
                                   svc.client.status()["devices"] for u in d["users"]),
                       20, "alice's use")
    usage = usage_of(svc, held.pid)
    base = {"op": "decide", **usage, "decision": "killed", "decided_by": "user:popup"}
    for bad, why in [({"decided_by": "rule:homework (policy)"}, "decided_by must be one of"),
                     ({"decision": "muted"}, "decision must be one of"),
                     ({"decision": "<b>x</b>" * 20}, "longer than 64"),
                     ({"kind": "toaster"}, "kind must be one of camera, microphone"),
                     ({"pid": 0}, "at least 1"), ({"uid": 0}, "knows who you are"),
                     ({"create_time": float("inf")}, "")]:
        line = json.dumps({**base, **bad}).replace("Infinity", "1e999")
        [raw] = raw_as(sandbox, alice, (line + "\n").encode())
        answer = json.loads(raw)
        assert answer["ok"] is False and answer["code"] == "bad-request", (bad, answer)
        assert why in answer["error"], (bad, answer)
    assert session_of(svc, held.pid)["decision"] is None
    assert svc.alive()


def _rules_doc(*rules: Any) -> dict[str, Any]:
    return rules_to_json(list(rules))


def test_an_accounts_own_rules_are_enforced_on_its_processes_only(
        sandbox: Box, accounts: Accounts) -> None:
    alice, bob = accounts.user(), accounts.user()
    svc = Service(sandbox).start()
    home = sandbox.root / "home" / alice.name
    # Any app on the camera: ended. Both accounts' holders are the same python3.
    doc = _rules_doc(make_rule("kill", kind="camera", label="no camera for me"))
    answer = as_tray(sandbox, alice, "rules", {"path": str(home / "rules.json"), "doc": doc})
    assert answer == {"ok": True, "kept": 1, "problems": []}, answer

    hers = UserHolder(sandbox, alice, [sandbox.node("video0")])
    his, verdict = decision_for(svc, lambda: UserHolder(sandbox, bob,
                                                        [sandbox.node("video1")]))
    assert verdict == "ask"  # her rules are not his
    assert hers.proc.wait(20) is not None  # ended by her own rule
    realenv.wait_until(lambda: session_of(svc, hers.pid)["decision"] == "killed", 20,
                       "her session to say killed")
    assert session_of(svc, hers.pid)["decided_by"] == "rule:no camera for me"
    realenv.wait_until(lambda: any(e.get("pid") == his.pid
                                   for e in svc.client.history()["entries"]), 20,
                       "bob's session")
    assert his.proc.poll() is None  # her rules never touch bob's programs
    assert session_of(svc, his.pid)["decision"] is None

    # A person's later answer does not replace what a rule did.
    usage = {"kind": "camera", "device": session_of(svc, hers.pid)["device"],
             "pid": hers.pid, "create_time": session_of(svc, hers.pid)["create_time"]}
    refused = send(sandbox, alice, {"op": "decide", **usage, "decision": "allowed-once",
                                    "decided_by": "user:popup"})
    assert refused["code"] == "denied" and "decided by rule:" in refused["error"], refused
    assert session_of(svc, hers.pid)["decision"] == "killed"

    # An empty list forgets them: her next camera use is left alone.
    assert as_tray(sandbox, alice, "rules", {"path": str(home / "rules.json"),
                                             "doc": _rules_doc()})["kept"] == 0
    again, verdict = decision_for(svc, lambda: UserHolder(sandbox, alice,
                                                          [sandbox.node("video0")]))
    assert verdict == "ask" and again.proc.poll() is None
    his.end()
    again.end()


def test_an_accounts_block_rule_never_closes_the_camera_under_another_account(
        sandbox: Box, accounts: Accounts) -> None:
    alice, bob = accounts.user(), accounts.user()
    svc = Service(sandbox).start()
    node = sandbox.node("video0")
    his = UserHolder(sandbox, bob, [node])
    realenv.wait_until(lambda: any(u["pid"] == his.pid for d in
                                   svc.client.status()["devices"] for u in d["users"]),
                       20, "bob's call")
    home = sandbox.root / "home" / alice.name
    doc = _rules_doc(make_rule("block-device", kind="camera", label="cam off"))
    assert as_tray(sandbox, alice, "rules", {"path": str(home / "rules.json"),
                                             "doc": doc})["ok"] is True
    hers = UserHolder(sandbox, alice, [node])
    assert hers.proc.wait(20) is not None  # hers ended instead of a block
    realenv.wait_until(lambda: session_of(svc, hers.pid)["decision"] == "blocked", 20,
                       "her session's decision")
    assert his.proc.poll() is None and mode(node) == 0o666  # bob's call goes on
    assert svc.client.blocks()["blocks"] == []

    # With nobody else on the camera, her rule blocks it as her own block: she lifts it.
    his.end()
    realenv.wait_until(lambda: not [u for d in svc.client.status()["devices"]
                                    for u in d["users"]], 20, "the camera to be free")
    third = UserHolder(sandbox, alice, [node])
    assert third.proc.wait(20) is not None
    realenv.wait_until(lambda: mode(node) == 0, 20, "the camera to be blocked")
    [blk] = svc.client.blocks()["blocks"]
    assert blk["kind"] == "camera"
    unblock = send(sandbox, alice, {"op": "unblock", "target": "camera"})
    assert unblock["ok"] is True, unblock
    assert mode(node) == 0o666


def test_own_rules_are_bounded_and_checked(sandbox: Box, accounts: Accounts) -> None:
    alice = accounts.user()
    svc = Service(sandbox).start()
    good = _rules_doc(make_rule("kill", kind="camera", label="ok"))["rules"][0]
    many = [{**good, "label": f"rule {i}"} for i in range(MAX_ACCOUNT_RULES + 1)]
    answer = send(sandbox, alice, {"op": "user-rules", "rules": json.dumps({"rules": many})})
    assert answer["code"] == "bad-request" and "at most 256" in answer["error"], answer
    for text in ["{", "[Infinity]", "[" * 10_000 + "]" * 10_000,
                 json.dumps({"version": 99, "rules": []}), "\"x\"", "{\"rules\": 3}"]:
        answer = send(sandbox, alice, {"op": "user-rules", "rules": text})
        assert answer["ok"] is False and answer["code"] == "bad-request", (text, answer)
    # A bad rule among good ones is left out and said so; the good one is kept.
    text = json.dumps({"rules": [{**good, "verdict": "explode"}, good]})
    answer = send(sandbox, alice, {"op": "user-rules", "rules": text})
    assert answer["ok"] is True and answer["kept"] == 1, answer
    assert "explode" in answer["problems"][0]
    # More than a request line may carry: refused before it is read.
    huge = send_raw_line(sandbox, alice, {"op": "user-rules", "rules": "x" * 70_000})
    assert "too-long" in huge or "<closed>" in huge, huge
    assert svc.alive()


def send_raw_line(b: Box, who: Account, request: dict[str, Any]) -> str:
    return "\n".join(raw_as(b, who, (json.dumps(request) + "\n").encode()))


def test_the_rules_window_saves_and_sends(sandbox: Box, accounts: Accounts) -> None:
    """ServiceRuleFile.save writes the file and hands the rules over by itself."""
    alice = accounts.user()
    svc = Service(sandbox).start()
    code = textwrap.dedent("""
        import sys, threading
        from pathlib import Path
        from camguard.app.guard_service import ServiceGuard
        from camguard.app.service_feed import ServiceRuleFile
        from camguard.core.rules import make_rule
        from camguard.app.guard_service import service_client
        f = ServiceRuleFile(ServiceGuard(service_client(Path(sys.argv[1]))),
                            Path(sys.argv[2]))
        f.save([make_rule("kill", kind="camera", label="saved")])
        for t in threading.enumerate():
            if t.name == "camguard-send-rules":
                t.join(30)
        print(f.path.read_text())
    """)
    home = sandbox.root / "home" / alice.name
    home.mkdir(mode=0o755)
    os.chown(home, alice.uid, alice.gid)
    res = subprocess.run([*setpriv(alice), SYSTEM_PYTHON, "-c", code, str(sandbox.sock),
                          str(home / "rules.json")], capture_output=True, text=True,
                         timeout=60, cwd=home, env=sandbox.user_env(alice), check=False)
    assert res.returncode == 0 and "saved" in res.stdout, res.stderr
    held = UserHolder(sandbox, alice, [sandbox.node("video0")])
    assert held.proc.wait(20) is not None  # the rule the window saved is in force
    realenv.wait_until(lambda: session_of(svc, held.pid)["decided_by"] == "rule:saved", 20,
                       "the rule's decision in the service's history")


def test_camguard_rules_add_hands_the_rule_to_the_service(sandbox: Box,
                                                          accounts: Accounts) -> None:
    alice, bob = accounts.user(), accounts.user()
    svc = Service(sandbox).start()
    res = camguard_as(sandbox, alice, "rules", "add", "--verdict", "kill", "--kind", "camera",
                      "--label", "from the cli")
    assert res.returncode == 0 and "warning" not in res.stderr, res
    hers = UserHolder(sandbox, alice, [sandbox.node("video0")])
    his = UserHolder(sandbox, bob, [sandbox.node("video1")])
    assert hers.proc.wait(20) is not None
    realenv.wait_until(lambda: session_of(svc, hers.pid)["decided_by"] == "rule:from the cli",
                       20, "the rule's decision")
    assert his.proc.poll() is None
    res = camguard_as(sandbox, alice, "rules", "remove", "from the cli")
    assert res.returncode == 0, res
    again, verdict = decision_for(svc, lambda: UserHolder(sandbox, alice,
                                                          [sandbox.node("video0")]))
    assert verdict == "ask" and again.proc.poll() is None  # gone from the service too
