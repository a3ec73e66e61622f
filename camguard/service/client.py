"""A client of the camguard service, for the CLI and the tray: one method per operation.

Each call opens its own connection (cheap on a Unix socket, and a failed call cannot leave
a half-read answer behind for the next one); :meth:`ServiceClient.watch` keeps one open
and yields events until it is closed. Answers are returned as the service sent them:
``{"ok": false, ...}`` is an answer, not an exception; only "cannot talk to the service"
raises :class:`ServiceUnavailable`.

Whatever path was asked for (``--socket``, ``CAMGUARD_SOCKET`` or the default), the client
talks only to a service run by root, or by the caller's own account (which cannot fool
itself): an account that puts its own server at the path the CLI uses would otherwise
collect passwords and hand out forged answers. Both the socket file's owner and the
serving process (SO_PEERCRED) are checked; anything else raises :class:`ServiceImpostor`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from camguard.core.defaults import DEFAULT_LINUX_SOCKET as DEFAULT_SOCKET

# The error codes and the line format only, not the service's request checks: a command that
# asks the service loads no more (issue 16).
from camguard.service import wire as P

if TYPE_CHECKING:
    from camguard.service.authorization import PeerCredentials

# Answers can be large (a long history); a line past this is a broken or hostile server.
MAX_ANSWER = 256 << 20

log = logging.getLogger(__name__)


def default_socket() -> Path:
    """``CAMGUARD_SOCKET`` when set, else the system service's socket."""
    override = os.environ.get("CAMGUARD_SOCKET")
    return Path(override) if override else DEFAULT_SOCKET


class ServiceUnavailable(Exception):
    """Nothing answers at the socket, or the answer was not the protocol."""


class ServiceImpostor(ServiceUnavailable):
    """The socket belongs to, or is served by, an account that is neither root nor you."""


def _account(uid: int) -> str:
    try:
        import pwd  # here, not at the top: camguard.cli imports this module on any OS

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def trusted_uids() -> frozenset[int]:
    """Who may serve camguard to this process: root, and this process's own account."""
    return frozenset({0, os.geteuid()})


def check_server(path: Path, sock: socket.socket, peer: PeerCredentials) -> None:
    """Raise :class:`ServiceImpostor` unless root (or this account) owns ``path`` and
    serves on ``sock`` (``peer``: the platform transport's kernel-given identity); the
    message says who does instead."""
    trusted = trusted_uids()
    owner = os.lstat(path).st_uid
    server = peer(sock)[1]
    for what, uid in (("the socket is owned by", owner), ("it is served by", server)):
        if uid not in trusted:
            raise ServiceImpostor(f"{path} is not the camguard service: {what} "
                                  f"{_account(uid)}, not root; refusing to use it")


class _Lines:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def read(self) -> bytes:
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[:nl])
                del self.buf[:nl + 1]
                return line
            if len(self.buf) > MAX_ANSWER:
                raise ServiceUnavailable("the service sent an answer that never ends")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ServiceUnavailable("the service closed the connection")
            self.buf += chunk


def _exchange(sock: socket.socket, request: bytes) -> tuple[dict[str, Any], _Lines]:
    """Send one request line and read the answer line.

    A service that refuses a connection (busy) answers and closes without reading, so our
    send can fail (EPIPE, ECONNRESET) with its answer already waiting: read it then, so the
    caller learns why, instead of a bare "broken pipe".
    """
    lines = _Lines(sock)
    try:
        sock.sendall(request)
    except OSError as exc:
        try:
            return P.decode_response(lines.read()), lines
        except (OSError, ValueError, ServiceUnavailable):
            raise exc from None
    return P.decode_response(lines.read()), lines


class Watch:
    """An open ``watch``: iterate for event dicts; :meth:`close` (or ``with``) to stop."""

    def __init__(self, sock: socket.socket, lines: _Lines, hello: dict[str, Any]) -> None:
        self._sock = sock
        self._lines = lines
        self.hello = hello

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            try:
                line = self._lines.read()
            except (ServiceUnavailable, OSError):
                return
            event = P.decode_response(line)
            yield event
            if event.get("ok") is False:  # dropped for falling behind; the service closes
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# A platform's own way to reach the service (Windows' named pipe): a connected, socket-like
# object (sendall, recv, settimeout, shutdown, close) whose server it has checked, as
# check_server does for the socket; ServiceUnavailable (or ServiceImpostor) when it cannot.
Connect = Callable[[Path, float | None], Any]


@runtime_checkable
class ConnectingTransport(Protocol):
    """A platform transport with its own way to reach the service (Windows' named pipe)."""

    def default_address(self) -> Path: ...

    def connect(self, address: Path, timeout: float | None) -> Any: ...


class ServiceClient:
    """Talks to the service at ``path`` (see the module's note on whom it trusts)."""

    def __init__(self, path: Path | None = None, *, peer: PeerCredentials | None = None,
                 timeout: float = 60.0, connect: Connect | None = None) -> None:
        """``peer``: how the platform's transport tells who serves a socket; ``connect``:
        the platform's own way to reach the service instead (Windows' named pipe, whose
        server it checks itself). app/guard_service.service_client passes both."""
        self.path = path if path is not None else default_socket()
        self.peer = peer
        self.timeout = timeout
        self._platform_connect = connect

    # -- plumbing ----------------------------------------------------------------------------
    def _connect(self, timeout: float | None) -> socket.socket:
        if self._platform_connect is not None:
            conn: socket.socket = self._platform_connect(self.path, timeout)
            return conn
        if self.peer is None:  # never a socket whose server nobody checked
            raise ServiceUnavailable(f"cannot tell who serves {self.path} on this platform")
        sock = self._connect_when_room(timeout)
        try:
            check_server(self.path, sock, self.peer)
        except OSError as exc:
            sock.close()
            raise ServiceUnavailable(f"no camguard service at {self.path}: "
                                     f"{exc.strerror or exc}") from exc
        except ServiceUnavailable:
            sock.close()
            raise
        return sock

    def _connect_when_room(self, timeout: float | None) -> socket.socket:
        """Connect, waiting (up to ``timeout``) while the service's listen queue is full.

        A Unix socket with a timeout is non-blocking underneath, and connect(2) on one whose
        listener's backlog is full fails at once with EAGAIN (unix(7)) instead of waiting: a
        burst of connections from another account would otherwise make this one fail.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(self.path))
            except BlockingIOError as exc:
                sock.close()
                if deadline is not None and time.monotonic() + pause > deadline:
                    raise ServiceUnavailable(f"the camguard service at {self.path} is too "
                                             "busy to take a connection") from exc
                log.debug("the service's listen queue is full; trying again")
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            except OSError as exc:
                sock.close()
                raise ServiceUnavailable(f"no camguard service at {self.path}: "
                                         f"{exc.strerror or exc}") from exc
            return sock

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request; the answer as a dict (``ok`` false included)."""
        sock = self._connect(self.timeout)
        try:
            return _exchange(sock, P.encode({"op": op, **fields}))[0]
        except (OSError, ValueError) as exc:
            raise ServiceUnavailable(f"talking to the service at {self.path} failed: {exc}") \
                from exc
        finally:
            sock.close()

    def available(self) -> bool:
        try:
            return self.hello().get("ok") is True
        except ServiceUnavailable:
            return False

    # -- operations --------------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        return self.request("hello")

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def history(self, **filters: Any) -> dict[str, Any]:
        """Filters: since, until (seconds), kind, app, device, search, limit, user (admin)."""
        return self.request("history", **{k: v for k, v in filters.items() if v is not None})

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> dict[str, Any]:
        return self.request("kill", pid=pid, create_time=create_time, force=force)

    def block(self, target: str, seconds: float | None = None, *, unbind_usb: bool = False,
              persistent: bool = False) -> dict[str, Any]:
        return self.request("block", target=target, seconds=seconds, unbind_usb=unbind_usb,
                            persistent=persistent)

    def unblock(self, target: str, password: str | None = None) -> dict[str, Any]:
        return self.request("unblock", target=target, password=password)

    def blocks(self) -> dict[str, Any]:
        return self.request("blocks")

    def pause(self, seconds: float | None = None, password: str | None = None
              ) -> dict[str, Any]:
        return self.request("pause", seconds=seconds, password=password)

    def resume(self) -> dict[str, Any]:
        return self.request("resume")

    def rules(self) -> dict[str, Any]:
        return self.request("rules")

    def lock_status(self) -> dict[str, Any]:
        return self.request("lock-status")

    def lock_set(self, password: str, current: str | None = None) -> dict[str, Any]:
        return self.request("lock-set", password=password, current=current)

    def lock_clear(self, current: str | None = None) -> dict[str, Any]:
        return self.request("lock-clear", current=current)

    def decide(self, kind: str, device: str, pid: int | None, create_time: float | None, *,
               decision: str, decided_by: str) -> dict[str, Any]:
        return self.request("decide", kind=kind, device=device, pid=pid,
                            create_time=create_time, decision=decision, decided_by=decided_by)

    def asking(self, on: bool) -> dict[str, Any]:
        """This process's watch answers again, or not (its alerts are paused)."""
        return self.request("asking", on=on)

    def user_rules(self, rules: str) -> dict[str, Any]:
        """Send this account's own rules (a rules document as JSON text)."""
        return self.request("user-rules", rules=rules)

    def watch(self, answers: bool = False) -> Watch:
        """Start watching; raises ServiceUnavailable if the service refuses. ``answers``:
        a tray that asks its person about each usage (service/answers.py)."""
        sock = self._connect(self.timeout)
        try:
            hello, lines = _exchange(sock, P.encode(
                {"op": "watch", **({"answers": True} if answers else {})}))
        except (OSError, ValueError) as exc:
            sock.close()
            raise ServiceUnavailable(f"watching through {self.path} failed: {exc}") from exc
        if hello.get("ok") is not True:
            sock.close()
            raise ServiceUnavailable(str(hello.get("error", "the service refused to watch")))
        sock.settimeout(None)  # events come when they come
        return Watch(sock, lines, hello)
