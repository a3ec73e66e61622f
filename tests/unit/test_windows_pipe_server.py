"""The Windows service's named pipe, on Linux: the real ServiceServer and ServiceApi serve
through pipe_server.PipeListener over FakePipeIO (Windows' pipe calls, fed with the recorded
callers of tests/data/windows/pipe_callers.json). Who is let in, as whom, with which account
number; a squatted pipe name; a watcher that goes away; stop wakes blocked readers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from camguard.platform.windows.pipe import NamedPipeTransport
from camguard.platform.windows.pipe_authz import PipeCaller
from camguard.platform.windows.pipe_server import (
    NOBODY,
    PipeConnection,
    PipeListener,
    admin_sid,
    sid_uid,
)
from camguard.service import protocol as P
from camguard.service.api import ServiceApi
from camguard.service.hub import EventHub, Outgoing
from camguard.service.server import ListeningTransport, ServiceServer

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"
CALLERS = {c["why"]: PipeCaller(c["pid"], c["user"], tuple((s, a) for s, a in c["groups"]))
           for c in json.loads((DATA / "pipe_callers.json").read_text("utf-8"))["callers"]}
CHILD = CALLERS["a child's standard account at the console"]
ADMIN = CALLERS["an elevated administrator"]
REMOTE = CALLERS["a remote (network logon) caller, even an administrator"]
UNUSED = cast(Any, None)
DEADLINE = 10.0


class FakeClient:
    def __init__(self, caller: PipeCaller) -> None:
        self.caller = caller
        self.inbox = bytearray()  # what the server will read
        self.outbox = bytearray()  # what the server wrote
        self.closed = False
        self.handle: int | None = None


class FakePipeIO:
    """pipe_server.PipeIO in memory: clients queue up to connect; reads wait on a
    condition (never sleep-and-hope)."""

    def __init__(self, *, squatted: bool = False) -> None:
        self.cond = threading.Condition()
        self.waiting: list[FakeClient] = []
        self.bound: dict[int, FakeClient] = {}
        self.cancelled: set[int] = set()
        self.reading: set[int] = set()  # handles a server thread has waited to read on
        self.closed: list[int] = []
        self.next = 0
        self.squatted = squatted
        self.firsts = 0

    def connect(self, caller: PipeCaller, data: bytes = b"") -> FakeClient:
        client = FakeClient(caller)
        client.inbox += data
        with self.cond:
            self.waiting.append(client)
            self.cond.notify_all()
        return client

    def send(self, client: FakeClient, data: bytes) -> None:
        with self.cond:
            client.inbox += data
            self.cond.notify_all()

    def hang_up(self, client: FakeClient) -> None:
        with self.cond:
            client.closed = True
            self.cond.notify_all()

    def answer(self, client: FakeClient, lines: int = 1) -> list[dict[str, Any]]:
        with self.cond:
            assert self.cond.wait_for(lambda: client.outbox.count(b"\n") >= lines or (
                client.handle in self.closed), DEADLINE)
            return [json.loads(x) for x in bytes(client.outbox).splitlines()]

    # -- PipeIO ------------------------------------------------------------------------------
    def create(self, first: bool) -> int:
        if first:
            self.firsts += 1
            if self.squatted:
                raise OSError(231, "CreateNamedPipe \\\\.\\pipe\\camguard: All pipe instances "
                              "are busy")
        self.next += 1
        return self.next

    def wait_connect(self, handle: int, timeout: float) -> bool:
        with self.cond:
            if not self.cond.wait_for(lambda: bool(self.waiting), timeout):
                return False
            client = self.waiting.pop(0)
            client.handle = handle
            self.bound[handle] = client
            self.cond.notify_all()
            return True

    def caller(self, handle: int) -> PipeCaller:
        return self.bound[handle].caller

    def account_name(self, sid: str) -> str:
        if sid.endswith("-1013"):
            return "PC\\child"
        raise OSError(1332, "No mapping between account names and security IDs was done")

    def read(self, handle: int, size: int, timeout: float | None) -> bytes:
        client = self.bound[handle]
        with self.cond:
            self.reading.add(handle)
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: client.inbox or client.closed
                                      or handle in self.cancelled, timeout):
                raise TimeoutError("timed out")
            if not client.inbox:
                return b""
            data = bytes(client.inbox[:size])
            del client.inbox[:size]
            return data

    def write(self, handle: int, data: bytes, timeout: float | None) -> int:
        client = self.bound[handle]
        with self.cond:
            if client.closed:
                raise BrokenPipeError(232, "the client went away")
            client.outbox += data
            self.cond.notify_all()
        return len(data)

    def gone(self, handle: int) -> bool:
        return self.bound[handle].closed

    def cancel(self, handle: int) -> None:
        with self.cond:
            self.cancelled.add(handle)
            self.cond.notify_all()

    def close(self, handle: int) -> None:
        with self.cond:
            self.closed.append(handle)
            self.cond.notify_all()


def serve(io: FakePipeIO, admin_group: str = "S-1-5-32-544") -> ServiceServer:
    api = ServiceApi(state=UNUSED, history=UNUSED, killer=UNUSED, blocks=UNUSED, lock=UNUSED,
                     enforcement=UNUSED, hub=EventHub(), clock=UNUSED, rules=None,
                     admin_group=admin_group)
    server = ServiceServer(Path("\\\\.\\pipe\\camguard"), api, admin_group=admin_group,
                           listen=lambda _path, group: PipeListener(io, group))
    server.start()
    return server


def test_a_child_is_served_as_itself_and_an_admin_as_admin() -> None:
    io = FakePipeIO()
    server = serve(io)
    try:
        child = io.connect(CHILD, P.encode({"op": "hello"}))
        [hello] = io.answer(child)
        assert hello["ok"] and hello["caller"] == {
            "uid": sid_uid(CHILD.user_sid), "gid": 0, "user": "PC\\child", "admin": False}
        admin = io.connect(ADMIN, P.encode({"op": "hello"}))
        [hello] = io.answer(admin)
        # An account Windows cannot name is shown by its SID.
        assert hello["caller"]["admin"] is True and hello["caller"]["user"] == ADMIN.user_sid
        io.hang_up(child)
        io.hang_up(admin)
    finally:
        server.stop()
    assert io.firsts == 1  # only the first instance claims the name


def test_a_remote_caller_is_closed_without_a_word() -> None:
    io = FakePipeIO()
    server = serve(io)
    try:
        remote = io.connect(REMOTE, P.encode({"op": "hello"}))
        with io.cond:
            assert io.cond.wait_for(lambda: remote.handle in io.closed, DEADLINE)
        assert remote.outbox == b""
        # And the next client still finds an instance.
        child = io.connect(CHILD, P.encode({"op": "hello"}))
        assert io.answer(child)[0]["ok"]
    finally:
        server.stop()


def test_a_squatted_pipe_name_stops_the_service_from_starting() -> None:
    with pytest.raises(OSError, match="All pipe instances are busy"):
        serve(FakePipeIO(squatted=True))


def test_a_watcher_that_hangs_up_frees_its_slot_and_stop_wakes_readers() -> None:
    io = FakePipeIO()
    server = serve(io)
    try:
        watcher = io.connect(CHILD, P.encode({"op": "watch"}))
        [ok] = io.answer(watcher)
        assert ok["watching"] is True
        server._api._hub.publish(Outgoing({"event": "degraded"}))  # no usage: everyone's
        assert io.answer(watcher, 2)[1] == {"event": "degraded"}
        io.hang_up(watcher)  # peer_gone: select() cannot wait on a pipe
        with io.cond:
            assert io.cond.wait_for(lambda: watcher.handle in io.closed, DEADLINE)
        idle = io.connect(CHILD)  # says nothing: blocked in read until stop
        with io.cond:
            assert io.cond.wait_for(lambda: idle.handle in io.reading, DEADLINE)
    finally:
        started = time.monotonic()
        server.stop()
    with io.cond:
        assert io.cond.wait_for(lambda: idle.handle in io.closed, DEADLINE)
    assert idle.handle in io.cancelled and time.monotonic() - started < DEADLINE


def test_connection_send_and_close_once() -> None:
    io = FakePipeIO()
    client = io.connect(CHILD)
    handle = io.create(False)
    assert io.wait_connect(handle, 1.0)
    conn = PipeConnection(io, handle)
    conn.sendall(b"x" * 200_000)  # chunked at 64 KiB
    assert len(client.outbox) == 200_000
    conn.settimeout(0.0)
    with pytest.raises(TimeoutError):
        conn.recv(10)
    conn.close()
    conn.close()
    assert io.closed == [handle] and conn.peer_gone()
    with pytest.raises(OSError, match="closed"):
        conn.recv(1)


def test_account_numbers_and_admin_group() -> None:
    assert sid_uid("S-1-5-18") == 0
    a, b = sid_uid(CHILD.user_sid), sid_uid(ADMIN.user_sid)
    assert a != b and min(a, b) > 2**32 and max(a, b) < 2**53
    assert sid_uid(CHILD.user_sid) == a  # the same in every run
    names = {"camguard-admins": "S-1-5-21-1-2-3-1105"}
    assert admin_sid("S-1-5-32-544", names.get) == "S-1-5-32-544"
    assert admin_sid("camguard-admins", names.get) == "S-1-5-21-1-2-3-1105"
    assert admin_sid("no-such-group", names.get) == NOBODY
    assert admin_sid("x", lambda _n: "not a sid; rm") == NOBODY


def test_the_named_pipe_transport_brings_its_own_listener() -> None:
    transport = NamedPipeTransport()
    assert isinstance(transport, ListeningTransport)
    with pytest.raises(OSError, match="needs pywin32"):
        transport.listener(Path("\\\\.\\pipe\\camguard"), "S-1-5-32-544")
    assert transport.lookup(1) is None  # no pywin32 here: cannot say whose it is
