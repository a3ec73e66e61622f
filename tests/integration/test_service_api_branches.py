"""The service's operations for real (a root service subprocess on stand-in nodes): the
``blocks`` listing, errors a client can act on, the parental lock in front of unblock and
pause, and an ordinary account's block that never shortens someone else's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.service_env import Accounts, Box, Service, raw_as

pytestmark = pytest.mark.real


def ask(b: Box, who: Any, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``requests`` as ``who`` on one connection; their answers, in order."""
    data = b"".join(json.dumps(r).encode() + b"\n" for r in requests)
    return [json.loads(line) for line in raw_as(b, who, data, answers=len(requests))]


def test_blocks_lists_what_is_blocked_and_how(sandbox: Box) -> None:
    cam = sandbox.node("video0")
    client = Service(sandbox).start().client
    assert client.blocks() == {"ok": True, "blocks": [], "lifted": [], "problems": []}
    assert client.block("camera", 60)["ok"] is True
    answer = client.blocks()
    assert answer["ok"] is True and answer["lifted"] == [] and answer["problems"] == []
    [block] = answer["blocks"]
    assert block["kind"] == "camera"
    assert 0 < block["seconds_left"] <= 60
    assert block["since"] < block["until"]  # RFC 3339 UTC text sorts as time
    assert block["how"] == [{"kind": "node", "target": str(cam)}]
    assert client.unblock("camera")["ok"] is True
    assert client.blocks()["blocks"] == []


def test_errors_a_client_can_act_on(sandbox: Box) -> None:
    client = Service(sandbox).start().client
    # No microphone node and no mute in a root service: nothing to switch off.
    answer = client.block("microphone")
    assert answer["ok"] is False and answer["code"] == "not-found", answer
    assert answer["outcome"] == "not_found" and "no microphone found" in answer["error"]
    for op in ("block", "unblock"):
        answer = client.request(op, target="speaker")
        assert answer == {"ok": False, "code": "bad-request",
                          "error": f"{op}.target must be camera, microphone or all"}
    answer = client.history(kind="speaker")
    assert answer["code"] == "bad-request" and answer["error"] == \
        "history.kind must be camera or microphone"
    answer = client.lock_set("")
    assert answer["code"] == "bad-request" and "a password must be 1 to" in answer["error"]
    assert client.lock_status() == {"ok": True, "set": False, "failures": 0,
                                    "retry_after": 0.0, "damaged": None}


def test_the_parental_lock_stands_in_front_of_unblock_and_pause(
        sandbox: Box, accounts: Accounts) -> None:
    kid, other_kid = accounts.user(), accounts.user()
    sandbox.node("video0")
    client = Service(sandbox).start().client
    assert client.lock_set("parent-secret")["ok"] is True
    assert client.block("camera", 600)["ok"] is True
    no_password, wrong, locked_out, set_lock, clear_lock = ask(
        sandbox, kid,
        {"op": "unblock", "target": "camera"},
        {"op": "unblock", "target": "camera", "password": "guess"},
        {"op": "pause", "password": "parent-secret"},  # right, but the wait is not over
        {"op": "lock-set", "password": "mine now"},
        {"op": "lock-clear"})
    assert no_password["code"] == "password-required", no_password
    assert no_password["error"] == "unblocking the camera needs the parental-lock password"
    assert wrong["code"] == "wrong-password" and wrong["retry_after"] == 120.0, wrong
    assert locked_out["code"] == "locked-out" and 0 < locked_out["retry_after"] <= 120
    assert locked_out["error"].startswith("pausing the rules: too many wrong passwords")
    assert set_lock["code"] == "denied" and "only an admin may set" in set_lock["error"]
    assert clear_lock["code"] == "denied" and "only an admin may clear" in clear_lock["error"]
    assert client.blocks()["blocks"] != []  # nothing the kid sent lifted it
    # The other account has its own back-off, and the right password stands for the parent.
    paused, unblocked = ask(sandbox, other_kid,
                            {"op": "pause", "seconds": 60, "password": "parent-secret"},
                            {"op": "unblock", "target": "camera", "password": "parent-secret"})
    assert paused["ok"] is True and paused["paused"] is True, paused
    assert unblocked["ok"] is True, unblocked
    assert client.blocks()["blocks"] == []
    assert client.lock_clear()["ok"] is True
    assert client.lock_status()["set"] is False


def test_an_ordinary_accounts_block_never_shortens_an_admins(
        sandbox: Box, accounts: Accounts) -> None:
    kid = accounts.user()
    sandbox.node("video0")
    sandbox.node("snd/pcmC0D0c")
    client = Service(sandbox).start().client
    [nothing] = ask(sandbox, kid, {"op": "unblock", "target": "camera"})
    assert nothing["ok"] is True
    assert nothing["message"] == "nothing you blocked: the camera is not blocked"
    assert client.block("camera", 600)["ok"] is True
    assert client.block("microphone")["ok"] is True  # until turned back on
    [mine] = ask(sandbox, kid, {"op": "block", "target": "camera", "seconds": 5})
    assert mine["ok"] is True, mine
    blocks = {b["kind"]: b for b in client.blocks()["blocks"]}
    # Not cut to 5 s, and the microphone's block (another kind) does not make it endless.
    assert blocks["camera"]["seconds_left"] is not None
    assert blocks["camera"]["seconds_left"] > 500
    # An admin's block until turned back on stays that way too.
    [mine] = ask(sandbox, kid, {"op": "block", "target": "all", "seconds": 5})
    assert mine["ok"] is True, mine
    blocks = {b["kind"]: b for b in client.blocks()["blocks"]}
    assert blocks["microphone"]["until"] is None and blocks["camera"]["until"] is None


def test_rules_listing_pause_needs_an_admin_and_blank_lines_are_skipped(
        sandbox: Box, accounts: Accounts) -> None:
    kid = accounts.user()
    client = Service(sandbox).start().client
    listing = client.rules()
    assert listing["ok"] is True and listing["rules"] == [] and listing["policy_error"] is None
    assert isinstance(listing["mode"], str) and listing["problems"] == []
    # No lock set: pausing the rules for every account is an admin's decision alone.
    lines = raw_as(sandbox, kid, b'\n\r\n  \n{"op":"pause","seconds":60}\n{"op":"hello"}\n',
                   answers=2)
    paused, hello = (json.loads(line) for line in lines)  # the blank lines got no answer
    assert paused["ok"] is False and paused["code"] == "denied"
    assert paused["error"].startswith("pausing the rules for every account needs an admin")
    assert hello["ok"] is True and hello["caller"]["uid"] == kid.uid
    assert client.status()["paused"] is False
