"""Every refusal of the service's request parser says what was wrong; watch quotas evict the
oldest watch beyond the per-account limit and forget an account once it has none; the
refusal log forgets a quiet account."""

from __future__ import annotations

import json

import pytest

from camguard.service import protocol as P
from camguard.service.quota import Quotas, RefusalLog, Slot


@pytest.mark.parametrize(("line", "code", "message"), [
    (b"x" * (P.MAX_LINE + 1), P.TOO_LONG, f"request longer than {P.MAX_LINE} bytes"),
    (b'{"op":"hello"}\xff', P.BAD_REQUEST, "request is not valid UTF-8 (byte 14)"),
    (b"[" * 60_000, P.BAD_REQUEST, "request is nested too deeply"),
    (b'{"op":"pause","seconds":Infinity}', P.BAD_REQUEST,
     "request is not valid JSON: Infinity is not a number JSON allows"),
    (b'{"op":', P.BAD_REQUEST, "request is not valid JSON: Expecting value: line 1 column 7"
                               " (char 6)"),
    (b'"hello"', P.BAD_REQUEST, "a request must be a JSON object"),
    (b'{"op":7}', P.BAD_REQUEST, 'a request needs an "op" (text)'),
    # Made visible by core.text.literal (ESC as \x1b), then quoted with repr().
    (b'{"op":"rm\\u001b[2J"}', P.UNKNOWN_OP,
     "unknown op 'rm\\\\x1b[2J' (known: asking, block, blocks,"),
    (b'{"op":"status","uid":0}', P.BAD_REQUEST, "unknown field 'uid' for 'status' (the "
                                                "service knows who you are from the kernel)"),
    (b'{"op":"status","colour":"red"}', P.BAD_REQUEST, "unknown field 'colour' for 'status'"),
    (b'{"op":"kill"}', P.BAD_REQUEST, "'kill' needs the field 'pid'"),
    (b'{"op":"kill","pid":[1]}', P.BAD_REQUEST, "kill.pid must be int, not list"),
    (b'{"op":"kill","pid":{"a":1}}', P.BAD_REQUEST, "kill.pid must be int, not object"),
    (b'{"op":"kill","pid":1.5}', P.BAD_REQUEST, "kill.pid must be int, not num"),
    (b'{"op":"kill","pid":0}', P.BAD_REQUEST, "kill.pid must be at least 1 and at most 4194304"),
    (b'{"op":"pause","seconds":1e999}', P.BAD_REQUEST, "pause.seconds must be a finite number"),
    (b'{"op":"pause","seconds":0}', P.BAD_REQUEST, "pause.seconds must be more than 0 and at "
                                                   "most 31622400 seconds (366 days)"),
    (b'{"op":"unblock","target":"camera","password":"a\\u0000b"}', P.BAD_REQUEST,
     "unblock.password is longer than 1024 characters or holds a NUL"),
    (b'{"op":"app","x":1}', P.UNKNOWN_OP, "unknown op 'app'"),
])
def test_a_refused_request_says_why(line: bytes, code: str, message: str) -> None:
    with pytest.raises(P.RequestError, match=r"^") as caught:
        P.parse_request(line)
    assert caught.value.code == code
    assert str(caught.value).startswith(message), str(caught.value)


def test_an_accepted_request_keeps_its_fields_with_ints_as_numbers() -> None:
    req = P.parse_request(b'{"op":"block","target":"all","seconds":60,"unbind_usb":false}')
    assert req.op == "block" and req.get("target") == "all"
    assert req.get("seconds") == 60.0 and isinstance(req.get("seconds"), float)
    req = P.parse_request(b'{"op":"unblock","target":"all","password":null}')
    assert req.get("password", "default") == "default"  # null reads as not given
    assert P.parse_request(b'{"op":"history","limit":0}').get("limit") == 0


def test_answers_are_one_ascii_line_and_only_objects_are_answers() -> None:
    line = P.encode(P.error(P.DENIED, "no \udcff way", pid=3))
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    assert json.loads(line) == {"ok": False, "error": "no \udcff way", "code": P.DENIED,
                                "pid": 3}
    assert P.decode_response(line)["code"] == P.DENIED
    with pytest.raises(ValueError, match="not a JSON object"):
        P.decode_response(b"[1, 2]")


def test_a_watch_beyond_the_per_account_limit_closes_the_oldest_and_release_forgets() -> None:
    q = Quotas(20, per_uid=5, admin_reserve=2, watches_per_uid=2)
    slots = [q.acquire(1000, admin=False) for _ in range(3)]
    assert all(isinstance(s, Slot) for s in slots)
    a, b, c = (s for s in slots if isinstance(s, Slot))
    q.start_watch(a)
    q.start_watch(b)
    assert not a.evicted.is_set() and not b.evicted.is_set()
    q.start_watch(c)  # a third watch: the oldest is told to go
    assert a.evicted.is_set() and not b.evicted.is_set() and not c.evicted.is_set()
    for s in (a, b, c):
        q.release(s)
    assert q._watches == {}  # an account with no watch left is forgotten
    # An admin's watches are never evicted for its own count.
    admin = [q.acquire(0, admin=True) for _ in range(3)]
    for s in admin:
        assert isinstance(s, Slot)
        q.start_watch(s)
    assert not any(s.evicted.is_set() for s in admin if isinstance(s, Slot))


def test_the_refusal_log_forgets_an_account_quiet_for_two_periods(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    rlog = RefusalLog(lambda: now[0], every=60.0)
    with caplog.at_level("WARNING", logger="camguard.service.quota"):
        rlog.refused(1001, "busy")
        now[0] = 130.0
        rlog.flush()  # nothing more was refused: 1001 is forgotten (memory stays bounded
        assert rlog._seen == {}  # whatever number of accounts a flood comes from)...
        rlog.refused(1001, "busy again")  # ...so this is a fresh first warning
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["refused a connection from uid 1001: busy",
                        "refused a connection from uid 1001: busy again"]


def test_heavy_requests_take_turns_per_account_and_share_two_lanes() -> None:
    import threading

    from camguard.service.quota import Turns

    turns = Turns(lanes=2)
    inside: list[int] = []
    peak: dict[str, int] = {"all": 0, "same": 0}
    lock = threading.Lock()
    gate = threading.Event()

    def work(uid: int) -> bytes:
        with lock:
            inside.append(uid)
            peak["all"] = max(peak["all"], len(inside))
            peak["same"] = max(peak["same"], inside.count(uid))
        gate.wait(30)
        with lock:
            inside.remove(uid)
        return b"x"

    threads = [threading.Thread(target=turns.run, args=(uid, lambda u=uid: work(u)))
               for uid in (1000, 1000, 1000, 1001, 1002)]
    for t in threads:
        t.start()
    from tests.realenv import wait_until
    wait_until(lambda: len(inside) == 2, 20, "two lanes to fill")
    gate.set()
    for t in threads:
        t.join(30)
    assert peak == {"all": 2, "same": 1}
    assert turns._per_uid == {}  # nothing kept for accounts that left
