"""The service's defensive checks, called in this process with requests the wire protocol
would already have refused (a second line of defence must hold on its own), the event hub's
per-watcher filter, and a server stopped before it started."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from camguard.platform import current
from camguard.service import protocol as P
from camguard.service.api import ServiceApi
from camguard.service.authorization import Caller
from camguard.service.hub import EventHub, Outgoing
from camguard.service.server import ServiceServer

ROOT = Caller(uid=0, gid=0, pid=1, name="root", admin=True)
UNUSED = cast(Any, None)  # a dependency these requests never reach


def api(rules: Any = None) -> ServiceApi:
    return ServiceApi(state=UNUSED, history=UNUSED, killer=UNUSED, blocks=UNUSED, lock=UNUSED,
                      enforcement=UNUSED, hub=EventHub(), clock=UNUSED, rules=rules)


@pytest.mark.parametrize(("op", "fields", "code", "message"), [
    ("watch", {}, P.UNKNOWN_OP, "'watch' cannot be used here"),
    ("rules", {}, P.UNAVAILABLE, "this service enforces no rules"),
    ("history", {"limit": -1}, P.BAD_REQUEST, "history.limit must be 0 or more"),
    ("kill", {"pid": 0}, P.BAD_REQUEST, "kill.pid must be a positive process id"),
    ("pause", {"seconds": -5.0}, P.BAD_REQUEST, "pause.seconds must be more than 0"),
    ("lock-status", {}, P.INTERNAL, "internal error in the service (see its log)"),
])
def test_checks_behind_the_protocol_hold_on_their_own(op: str, fields: dict[str, Any],
                                                     code: str, message: str) -> None:
    answer = api().handle(ROOT, P.Request(op, fields))
    assert answer == {"ok": False, "code": code, "error": message}


def test_a_watcher_gets_only_what_its_filter_accepts_and_unsubscribing_twice_is_harmless(
        ) -> None:
    hub = EventHub()
    mine = hub.subscribe(lambda item: item.payload.get("uid") == 1000)
    everyone = hub.subscribe(lambda item: True)
    hub.publish(Outgoing({"uid": 1001}))
    hub.publish(Outgoing({"uid": 1000}))
    got = mine.get(0.0)
    assert got is not None and got.payload == {"uid": 1000}
    assert mine.get(0.0) is None
    assert everyone.queue.qsize() == 2
    hub.unsubscribe(mine)
    hub.unsubscribe(mine)
    assert hub.count == 1


def test_a_server_stopped_before_it_started_does_nothing(tmp_path: Path) -> None:
    sock = tmp_path / "camguard.sock"
    server = ServiceServer(sock, api(), admin_group="nobody-here",
                           peer=current().service_transport().peer_credentials)
    server.stop()
    assert not sock.exists()
