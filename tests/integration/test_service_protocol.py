"""The socket protocol under attack: forged identities, huge lines, garbage, deep nesting,
too many clients and a watcher that stops reading; the service keeps serving throughout."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.service import protocol as P
from camguard.service.authorization import Caller, can_see
from camguard.service.hub import EventHub, Outgoing
from tests import realenv
from tests.service_env import Accounts, Box, Service, connect, raw_as

pytestmark = pytest.mark.real




HELLO = b'{"op":"hello"}\n'


@pytest.mark.parametrize(("sent", "code", "says"), [
    (b'{"op":"status","uid":0}\n', "bad-request", "knows who you are"),
    (b'{"op":"history","user":"root"}\n', "denied", "another account"),
    (b'\x00\xff\xfe garbage \x80\n', "bad-request", "not valid UTF-8"),
    (b'{"op": "status"\n', "bad-request", "not valid JSON"),
    (b"[" * 30000 + b"]" * 30000 + b"\n", "bad-request", "nested too deeply"),
    (b'{"op":"kill","pid":"1"}\n', "bad-request", "kill.pid must be int"),
    (b'{"op":"kill","pid":1e999}\n', "bad-request", "must be int"),
    (b'{"op":"block","target":"camera","seconds":NaN}\n', "bad-request", "not a number"),
    (b'{"op":"kill","pid":' + b"9" * 5000 + b"}\n", "bad-request", "not valid JSON"),
    (b'{"op":"block","target":"camera","seconds":1e300}\n', "bad-request",
     "block.seconds must be more than 0 and at most 31622400 seconds (366 days)"),
    (b'{"op":"pause","seconds":-5}\n', "bad-request", "pause.seconds must be more than 0"),
    (b'{"op":"kill","pid":99999999999}\n', "bad-request", "kill.pid must be at least 1"),
    (b'{"op":"history","since":1e20}\n', "bad-request", "history.since must be at least 0"),
    (b'{"op":"history","limit":-1}\n', "bad-request", "history.limit must be at least 0"),
    (b'{"op":"format-disk"}\n', "unknown-op", "unknown op"),
    (b'{"op":"status","x":{"y":[1,2]}}\n', "bad-request", "unknown field"),
    (b'["op","status"]\n', "bad-request", "must be a JSON object"),
])
def test_a_bad_request_gets_a_clear_error_and_the_connection_still_works(
        sandbox: Box, accounts: Accounts, sent: bytes, code: str, says: str) -> None:
    kid = accounts.user()
    svc = Service(sandbox).start()
    first, second = raw_as(sandbox, kid, sent + HELLO, answers=2)
    answer = json.loads(first)
    assert answer["ok"] is False and answer["code"] == code and says in answer["error"], answer
    hello = json.loads(second)
    assert hello["ok"] is True and hello["caller"]["uid"] == kid.uid  # the kernel's word
    assert hello["caller"]["admin"] is False
    assert svc.alive()


def test_a_stored_expiry_past_any_date_does_not_break_blocks(sandbox: Box,
                                                            accounts: Accounts) -> None:
    """An older version took {"seconds": 1e300} and stored it; `blocks` then failed for
    every caller (OverflowError), across restarts."""
    kid = accounts.user()
    sandbox.state.mkdir(mode=0o700, exist_ok=True)
    (sandbox.state / "blocks.json").write_text(json.dumps({"version": 1, "blocks": [
        {"kind": "camera", "since": 1.7e9, "until": 1e300, "options": {}, "steps": []}]}))
    svc = Service(sandbox).start()
    [line] = raw_as(sandbox, kid, b'{"op":"blocks"}\n')
    answer = json.loads(line)
    assert answer["ok"] is True, answer
    assert answer["blocks"][0]["kind"] == "camera" and answer["blocks"][0]["until"] is None
    assert svc.client.status()["blocked"] == ["camera"]


def test_a_line_over_64_kib_is_refused_and_closed_and_the_service_keeps_running(
        sandbox: Box, accounts: Accounts) -> None:
    kid = accounts.user()
    svc = Service(sandbox).start()
    huge = b'{"op":"status","pad":"' + b"A" * (P.MAX_LINE + 10) + b'"}\n'
    lines = raw_as(sandbox, kid, huge + HELLO, answers=2)
    answer = json.loads(lines[0])
    assert answer["code"] == "too-long" and "65536" in answer["error"]
    assert lines[1] == "<closed>"  # the hello after it is never read
    # A line that never ends is cut off the same way, without waiting for a newline.
    lines = raw_as(sandbox, kid, b"x" * (P.MAX_LINE * 3), answers=2)
    assert json.loads(lines[0])["code"] == "too-long" and lines[1] == "<closed>"
    assert json.loads(raw_as(sandbox, kid, HELLO)[0])["ok"] is True
    assert svc.alive()


def test_clients_over_the_cap_are_told_busy_and_the_rest_still_served(sandbox: Box) -> None:
    svc = Service(sandbox, "--max-clients", "2").start()
    held: list[socket.socket] = []

    def one_more_served() -> bool:
        # A slot is freed when the service notices a client left (asynchronously): retry a
        # "busy" until both held connections are being served.
        s = connect(sandbox.sock)
        try:
            s.sendall(HELLO)
            answer = json.loads(s.makefile("rb").readline() or b"{}")
        except OSError:
            answer = {}
        if answer.get("ok") is True:
            held.append(s)
            return len(held) == 2
        s.close()
        return False

    realenv.wait_until(one_more_served, 20, "two connections to be served")
    extra = connect(sandbox.sock)
    answer = json.loads(extra.makefile("rb").readline())
    assert answer == {"ok": False, "code": "busy", "error": answer["error"]}
    extra.close()
    held.pop().close()

    def served() -> bool:
        try:
            return svc.client.hello().get("ok") is True
        except Exception:
            return False

    realenv.wait_until(served, 20, "a freed slot to be used")
    for s in held:
        s.close()


def test_a_watcher_that_does_not_read_is_dropped_and_publishing_never_waits() -> None:
    hub = EventHub(maxsize=4)
    slow = hub.subscribe(lambda item: True)
    fast = hub.subscribe(lambda item: True)
    done = threading.Event()

    def publish() -> None:
        for n in range(50):
            hub.publish(Outgoing({"n": n}))
            got = fast.get(1.0)  # the reading subscriber keeps up
            assert got is not None and got.payload["n"] == n
        done.set()

    t = threading.Thread(target=publish)
    t.start()
    t.join(30)
    assert done.is_set()  # 50 events went out although one subscriber never read
    assert slow.dropped and not fast.dropped and hub.count == 1


def test_a_watch_filter_keeps_other_accounts_usages_out() -> None:
    hub = EventHub()
    cam = Device(DeviceKind.CAMERA, "/dev/video0")
    mine = Usage(cam, ProcessRef(10, 1.0, user="alice"))
    theirs = Usage(cam, ProcessRef(11, 1.0, user="bob"))
    alice = Caller(uid=1500, gid=1500, pid=1, name="alice", admin=False)
    sub = hub.subscribe(lambda item: item.usage is None or can_see(alice, item.usage))
    for n, usage in enumerate([theirs, mine, None]):
        hub.publish(Outgoing({"n": n}, usage))
    got = [sub.get(0.5) for _ in range(2)]
    assert [g.payload["n"] for g in got if g is not None] == [1, 2]
    assert sub.get(0.05) is None


@pytest.mark.parametrize("line", [b'{"op":"kill"}', b'{"op":"unblock","target":7}',
                                  b'{"op":"lock-set","password":"' + b"p" * 2000 + b'"}',
                                  b'{"op":"history","limit":true}',
                                  b'{"op":"block","target":"camera","seconds":"1h"}'])
def test_parse_request_refuses_missing_and_mistyped_fields(line: bytes) -> None:
    with pytest.raises(P.RequestError) as err:
        P.parse_request(line)
    assert err.value.code == "bad-request"


def test_parse_request_takes_ints_for_numbers_and_encode_survives_any_text() -> None:
    req = P.parse_request(b'{"op":"block","target":"all","seconds":90}')
    assert req.get("seconds") == 90.0 and isinstance(req.get("seconds"), float)
    line = P.encode(P.error("x", "name \udcff <b>\x1b[2J"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["error"] == "name \udcff <b>\x1b[2J"
