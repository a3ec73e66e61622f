"""The CLI's and tray's side of the Windows service's named pipe: the real ServiceClient and
open_guard talk through pipe_client.connect to the real ServiceServer + ServiceApi, both
ends over FakePipeIO (tests/unit/test_windows_pipe_server.py); a pipe served by an account
that is not LocalSystem is an impostor; no pipe means no service (the local guard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from camguard.app import guard_service
from camguard.app.guard_service import ServiceGuard, open_guard
from camguard.platform.windows.pipe_authz import PipeCaller
from camguard.platform.windows.pipe_client import connect, server_refusal
from camguard.platform.windows.pipe_server import sid_uid
from camguard.service.client import ServiceClient, ServiceImpostor, ServiceUnavailable
from camguard.service.hub import Outgoing
from tests.unit.test_windows_pipe_server import CHILD, DEADLINE, FakeClient, FakePipeIO, serve

PIPE = Path("\\\\.\\pipe\\camguard")
SYSTEM = "S-1-5-18"


class FakeClientIO:
    """The client's PipeIO: its handle is the FakeClient the server's FakePipeIO serves."""

    def __init__(self, server: FakePipeIO, caller: PipeCaller, *, server_sid: str = SYSTEM,
                 missing: bool = False) -> None:
        self.server, self.caller, self.sid, self.missing = server, caller, server_sid, missing
        self.cancelled: set[int] = set()

    def open_client(self, timeout: float | None) -> FakeClient:
        if self.missing:
            raise OSError(2, "The system cannot find the file specified")
        return self.server.connect(self.caller)

    def server_sid(self, handle: FakeClient) -> str:
        return self.sid

    def own_sid(self) -> str:
        return self.caller.user_sid

    def _served_closed(self, c: FakeClient) -> bool:
        return c.handle is not None and c.handle in self.server.closed

    def read(self, c: FakeClient, size: int, timeout: float | None) -> bytes:
        with self.server.cond:
            if not self.server.cond.wait_for(lambda: c.outbox or self._served_closed(c)
                                             or id(c) in self.cancelled, timeout):
                raise TimeoutError("timed out")
            data = bytes(c.outbox[:size])
            del c.outbox[:size]
            return data

    def write(self, c: FakeClient, data: bytes, timeout: float | None) -> int:
        if self._served_closed(c):
            raise BrokenPipeError(232, "the pipe is being closed")
        self.server.send(c, data)
        return len(data)

    def gone(self, c: FakeClient) -> bool:
        return self._served_closed(c)

    def cancel(self, c: FakeClient) -> None:
        with self.server.cond:
            self.cancelled.add(id(c))
            self.server.cond.notify_all()

    def close(self, c: FakeClient) -> None:
        self.server.hang_up(c)

    # The server's half of PipeIO: never used on the client's side.
    def create(self, first: bool) -> Any:
        raise AssertionError

    def wait_connect(self, handle: Any, timeout: float) -> bool:
        raise AssertionError

    def caller(self, handle: Any) -> Any:
        raise AssertionError

    def account_name(self, sid: str) -> str:
        raise AssertionError


def client_for(io: FakeClientIO) -> ServiceClient:
    return ServiceClient(PIPE, timeout=DEADLINE, connect=lambda p, t: connect(io, p, t))


def test_the_cli_reaches_the_service_through_the_pipe() -> None:
    server_io = FakePipeIO()
    server = serve(server_io)
    try:
        client = client_for(FakeClientIO(server_io, CHILD))
        hello = client.hello()
        assert hello["ok"] and hello["caller"]["uid"] == sid_uid(CHILD.user_sid)
        assert hello["caller"]["user"] == "PC\\child"
        with client.watch() as watch:
            assert watch.hello["watching"] is True
            server._api._hub.publish(Outgoing({"event": "degraded", "source": "mf-sensor"}))
            assert next(iter(watch)) == {"event": "degraded", "source": "mf-sensor"}
        with server_io.cond:  # the watch's close reached the server: its slot is free
            assert server_io.cond.wait_for(lambda: len(server_io.closed) >= 2, DEADLINE)
    finally:
        server.stop()


def test_a_pipe_served_by_another_account_is_an_impostor() -> None:
    server_io = FakePipeIO()
    server = serve(server_io)
    try:
        squatter = "S-1-5-21-3623811015-3361044348-30300820-1014"  # a sibling account
        client = client_for(FakeClientIO(server_io, CHILD, server_sid=squatter))
        with pytest.raises(ServiceImpostor, match=r"served by S-1-5-21-.*-1014, not LocalSystem"):
            client.hello()
    finally:
        server.stop()
    assert server_refusal(SYSTEM, "x") is None and server_refusal("S-1-5-21-9", "S-1-5-21-9") \
        is None


def test_no_pipe_is_no_service() -> None:
    client = client_for(FakeClientIO(FakePipeIO(), CHILD, missing=True))
    with pytest.raises(ServiceUnavailable, match="cannot find the file"):
        client.hello()


class FakeTransport:
    def __init__(self, io: FakeClientIO) -> None:
        self.io = io

    def default_address(self) -> Path:
        return PIPE

    def connect(self, address: Path, timeout: float | None) -> Any:
        return connect(self.io, address, timeout)


class FakePlatform:
    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport

    def service_transport(self) -> FakeTransport:
        return self.transport


def test_open_guard_picks_the_pipe_service_or_the_local_guard(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMGUARD_SOCKET", raising=False)
    local = object()
    server_io = FakePipeIO()
    server = serve(server_io)
    try:
        monkeypatch.setattr(guard_service, "service_transport", lambda: FakePlatform(
            FakeTransport(FakeClientIO(server_io, CHILD))).service_transport())
        assert isinstance(open_guard(None, lambda: local), ServiceGuard)  # type: ignore[arg-type, return-value]
        monkeypatch.setattr(guard_service, "service_transport", lambda: FakePlatform(
            FakeTransport(FakeClientIO(server_io, CHILD, missing=True))).service_transport())
        assert open_guard(None, lambda: local) is local  # type: ignore[arg-type, return-value]
    finally:
        server.stop()
