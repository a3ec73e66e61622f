"""The macOS service socket, on Linux: the real ServiceServer, ServiceApi, ServiceClient and
open_guard over a real Unix socket, with each end's identity taken from the macOS
transport's LOCAL_PEERCRED/LOCAL_PEERPID decoding (platform.macos.system.MacSocketTransport)
of xucred bytes laid out as <sys/ucred.h> says (constructed: no Mac recorded them). Linux
cannot answer getsockopt(SOL_LOCAL, LOCAL_PEERCRED): FakePeerSocket stands in for that
one call; everything around it is the code the Mac runs."""

from __future__ import annotations

import socket
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from camguard.app import guard_service
from camguard.platform.macos.system import MacSocketTransport
from camguard.service.api import ServiceApi
from camguard.service.client import ServiceClient, ServiceImpostor, ServiceUnavailable
from camguard.service.hub import EventHub
from camguard.service.server import ServiceServer
from tests.fakes import FakePeerSocket

UNUSED = cast(Any, None)
# A standard macOS account's xucred as LOCAL_PEERCRED fills it (uid 501, staff first, then
# everyone, localaccounts, _appserverusr...), and root's (the service, wheel).
USER_GROUPS = [20, 12, 61, 79, 80, 81, 98, 701, 33, 100, 204, 250, 395, 398, 399, 400]


def xucred(uid: int, groups: list[int]) -> bytes:
    return struct.pack("=IIh2x16I", 0, uid, len(groups), *(groups + [0] * 16)[:16])


def mac_peer(uid: int, groups: list[int], pid: int) -> Callable[[socket.socket], Any]:
    """The transport's peer_credentials, with the kernel's answer for this connection."""
    transport = MacSocketTransport()
    raw = FakePeerSocket(xucred(uid, groups), struct.pack("=i", pid))
    seen: list[socket.socket] = []

    def credentials(sock: socket.socket) -> tuple[int, int, int]:
        assert isinstance(sock, socket.socket)  # the real, connected socket is asked
        seen.append(sock)
        return transport.peer_credentials(raw)  # type: ignore[arg-type]

    credentials.seen = seen  # type: ignore[attr-defined]
    return credentials


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cg-mac-") as d:  # sun_path: 104 bytes on macOS
        yield Path(d)


def serve(path: Path, credentials: Callable[[socket.socket], Any]) -> ServiceServer:
    api = ServiceApi(state=UNUSED, history=UNUSED, killer=UNUSED, blocks=UNUSED, lock=UNUSED,
                     enforcement=UNUSED, hub=EventHub(), clock=UNUSED, rules=None,
                     admin_group="camguard-no-such-group")
    server = ServiceServer(path, api, admin_group="camguard-no-such-group",
                           peer=credentials)
    server.start()
    return server


def test_the_service_names_each_caller_by_local_peercred(sock_dir: Path) -> None:
    path = sock_dir / "camguard.sock"
    callers = mac_peer(501, USER_GROUPS, 4321)
    server = serve(path, callers)
    try:
        client = ServiceClient(path, timeout=10, peer=mac_peer(0, [0], 1))
        hello = client.hello()
    finally:
        server.stop()
    assert hello["ok"] is True
    # The caller is who the xucred says (uid 501, effective gid staff), not this process.
    assert hello["caller"]["uid"] == 501 and hello["caller"]["gid"] == 20
    assert hello["caller"]["admin"] is False
    assert len(callers.seen) == 1  # type: ignore[attr-defined]


def test_a_socket_served_by_another_account_is_refused(sock_dir: Path) -> None:
    path = sock_dir / "camguard.sock"
    server = serve(path, mac_peer(501, USER_GROUPS, 4321))
    try:
        client = ServiceClient(path, timeout=10, peer=mac_peer(4242, [20], 999))
        with pytest.raises(ServiceImpostor, match="served by uid 4242"):
            client.hello()
    finally:
        server.stop()


def test_a_damaged_xucred_is_no_caller(sock_dir: Path) -> None:
    """The listener closes a connection whose peer it cannot name; the client learns the
    service closed it, and nothing is served to nobody."""
    path = sock_dir / "camguard.sock"
    transport = MacSocketTransport()
    bad = FakePeerSocket(struct.pack("=IIh2x16I", 7, 0, 1, *[0] * 16), struct.pack("=i", 1))
    server = serve(path, lambda _sock: transport.peer_credentials(bad))  # type: ignore[arg-type]
    try:
        client = ServiceClient(path, timeout=10, peer=mac_peer(0, [0], 1))
        with pytest.raises((ServiceUnavailable, OSError), match=r"closed|reset|Broken pipe"):
            client.hello()
    finally:
        server.stop()


class FakeMacPlatform:
    """camguard.platform.current() on a Mac, as far as open_guard asks: its transport."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def service_transport(self) -> Any:
        return self.transport


def test_open_guard_finds_the_macos_socket_and_checks_its_server(
        sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sock_dir / "camguard.sock"
    monkeypatch.delenv("CAMGUARD_SOCKET", raising=False)

    class Transport(MacSocketTransport):
        """The macOS transport with its default address moved here and the kernel's answer
        about the server (root) for the one getsockopt Linux cannot make."""

        def default_address(self) -> Path:
            return path

        def peer_credentials(self, sock: socket.socket) -> tuple[int, int, int]:
            return super().peer_credentials(
                FakePeerSocket(xucred(0, [0]), struct.pack("=i", 1)))  # type: ignore[arg-type]

    monkeypatch.setattr(guard_service, "service_transport",
                        lambda: FakeMacPlatform(Transport()).service_transport())
    local = cast(Any, object())
    assert guard_service.open_guard(None, lambda: local) is local  # no socket yet: local
    server = serve(path, mac_peer(501, USER_GROUPS, 4321))
    try:
        guard = guard_service.open_guard(None, lambda: local)
        assert isinstance(guard, guard_service.ServiceGuard)
    finally:
        server.stop()


def test_xucred_layout_written_out_byte_by_byte() -> None:
    """The decoder against bytes written by hand from <sys/ucred.h> (XNU: u_int cr_version,
    uid_t cr_uid, short cr_ngroups, 2 bytes of padding, gid_t cr_groups[16]; 76 bytes,
    little-endian on arm64 and x86_64), not through the decoder's own struct format."""
    raw = bytes.fromhex(
        "00000000"  # cr_version 0 (XUCRED_VERSION)
        "f5010000"  # cr_uid 501
        "0300"  # cr_ngroups 3
        "aaaa"  # padding: whatever the kernel left there is ignored
        "14000000" "0c000000" "3d000000"  # staff (20), everyone (12), localaccounts (61)
        + "00000000" * 13)
    assert len(raw) == 76
    from camguard.platform.macos.system import decode_xucred

    assert decode_xucred(raw) == (501, 20)
    transport = MacSocketTransport()
    sock = FakePeerSocket(raw, bytes.fromhex("e1100000"))  # LOCAL_PEERPID: pid_t 4321
    assert transport.peer_credentials(sock) == (4321, 501, 20)  # type: ignore[arg-type]
