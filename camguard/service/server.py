"""The Unix socket server: who connected (SO_PEERCRED), one request line at a time, limits.

Each connection gets its own thread, within the quotas of camguard.service.quota (per
account, with slots kept for admins; more are told "busy" and closed, and logged at most
once a minute per account). A line longer than :data:`~camguard.service.protocol.MAX_LINE`
gets an error and the connection is closed (reading on would mean buffering whatever a
client sends); any other bad request gets an error and the connection stays usable. The
socket is mode 0666 so every account can connect: what each may do is decided per request.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from camguard.service import protocol as P
from camguard.service.api import ServiceApi
from camguard.service.authorization import Caller, PeerCredentials, Target, identify
from camguard.service.quota import (
    DEFAULT_ADMIN_RESERVE,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_PER_UID,
    Quotas,
    RefusalLog,
    Slot,
    Turns,
)

log = logging.getLogger(__name__)

# A request connection that says nothing for this long gives its slot back.
IDLE_TIMEOUT = 120.0
SEND_TIMEOUT = 5.0
_POLL = 0.25
# Requests whose answers are built in turns (quota.Turns): they can be large.
_HEAVY = frozenset({"history"})


class Listener(Protocol):
    """Where clients connect (the Unix socket here; a platform may bring its own, such as
    Windows' named pipe). ``accept`` waits about ``_POLL`` s and gives the connection with
    its kernel-given caller, or None when none came or the caller could not be told (the
    connection is then closed); OSError when accepting failed. A connection has ``recv``,
    ``sendall``, ``settimeout``, ``shutdown`` and ``close`` like a socket, and may have
    ``peer_gone()`` where select() does not work on it."""

    def accept(self) -> tuple[Any, Caller] | None: ...

    def close(self) -> None: ...


Listen = Callable[[Path, str], Listener]


@runtime_checkable
class ListeningTransport(Protocol):
    """A platform transport that brings its own listener (Windows' named pipe) and its own
    way to tell whose a process is (authorization.lookup_process reads Unix uids)."""

    def listener(self, address: Path, admin_group: str) -> Listener: ...

    def lookup(self, pid: int) -> Target | None: ...


class ServiceRunningError(RuntimeError):
    """Another service already answers on the socket path."""


class _Gone(Exception):
    """The client went away (or stopped reading) mid-answer."""


class ServiceServer:
    """Listens on ``path``; :meth:`start` returns once it accepts, :meth:`stop` ends all."""

    def __init__(self, path: Path, api: ServiceApi, *, admin_group: str,
                 peer: PeerCredentials | None = None,
                 max_clients: int = DEFAULT_MAX_CLIENTS, per_uid: int = DEFAULT_PER_UID,
                 admin_reserve: int = DEFAULT_ADMIN_RESERVE, max_line: int = P.MAX_LINE,
                 idle_timeout: float = IDLE_TIMEOUT, send_timeout: float = SEND_TIMEOUT,
                 listen: Listen | None = None) -> None:
        self.path = path
        # The Unix socket names each caller through the platform transport's ``peer``
        # (app/service.py hands it in); a platform's own listener names them itself.
        if listen is None:
            if peer is None:
                raise ValueError("a Unix socket server needs the transport's peer identity")
            unix_peer = peer
            listen = lambda at, group: UnixListener(at, group, unix_peer)  # noqa: E731
        self._listen: Listen = listen
        self._api = api
        self._admin_group = admin_group
        self._quotas = Quotas(max_clients, per_uid=per_uid, admin_reserve=admin_reserve)
        self._turns = Turns()
        self._refusals = RefusalLog(time.monotonic)
        self._max_line = max_line
        self._idle = idle_timeout
        self._send_timeout = send_timeout
        self._stopping = threading.Event()
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    # -- lifetime ----------------------------------------------------------------------------
    def start(self) -> None:
        self._listener = self._listen(self.path, self._admin_group)
        self._thread = threading.Thread(target=self._accept_loop, name="camguard-accept",
                                        daemon=True)
        self._thread.start()
        log.info("serving on %s", self.path)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # wakes their threads; each closes its own socket
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept_loop(self) -> None:
        assert self._listener is not None  # noqa: S101 - set by start()
        while not self._stopping.is_set():
            self._refusals.flush()
            try:
                got = self._listener.accept()
            except OSError as exc:
                if self._stopping.is_set():
                    return
                log.warning("accept failed: %s", exc)  # EMFILE and the like: retry shortly
                self._stopping.wait(_POLL)
                continue
            if got is None:
                continue
            conn, caller = got
            slot = self._quotas.acquire(caller.uid, caller.admin)
            if isinstance(slot, str):
                self._refuse_busy(conn, caller, slot)
                continue
            with self._lock:
                self._conns.add(conn)
            try:
                threading.Thread(target=self._serve, args=(conn, caller, slot),
                                 name="camguard-client", daemon=True).start()
            except RuntimeError:  # no thread to be had: give the slot back, never leak it
                log.warning("cannot start a thread for a client; closing it")
                with self._lock:
                    self._conns.discard(conn)
                conn.close()
                self._quotas.release(slot)

    def _refuse_busy(self, conn: socket.socket, caller: Caller, why: str) -> None:
        self._refusals.refused(caller.uid, why)
        with contextlib.suppress(OSError):
            # Never wait on a refused client: the answer fits in an empty socket buffer.
            conn.setblocking(False)
            conn.send(P.encode(P.error(P.BUSY, why)))
        conn.close()

    # -- one connection ----------------------------------------------------------------------
    def _serve(self, conn: socket.socket, caller: Caller, slot: Slot) -> None:
        try:
            self._requests(conn, caller, slot)
        except _Gone:
            pass
        except OSError as exc:
            log.debug("client connection ended: %s", exc)
        except Exception:
            log.exception("client connection failed")
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()
            self._quotas.release(slot)

    def _requests(self, conn: socket.socket, caller: Caller, slot: Slot) -> None:
        buf = bytearray()
        conn.settimeout(self._idle)
        while not self._stopping.is_set():
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > self._max_line:
                    self._too_long(conn, caller)
                    return
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    return  # idle: free the slot
                if not chunk:
                    return
                buf += chunk
                continue
            if nl > self._max_line:
                self._too_long(conn, caller)
                return
            line = bytes(buf[:nl]).rstrip(b"\r")
            del buf[:nl + 1]
            if not line.strip():
                continue
            try:
                request = P.parse_request(line)
            except P.RequestError as exc:
                log.info("bad request from uid %d: %s", caller.uid, exc)
                self._send(conn, P.error(exc.code, str(exc)))
                continue
            if request.op == "watch":
                self._watch(conn, caller, slot, request.get("answers") is True)
                return
            if request.op in _HEAVY:
                answer = functools.partial(_encoded, self._api.handle, caller, request)
                self._send_bytes(conn, self._turns.run(caller.uid, answer))
            else:
                self._send(conn, self._api.handle(caller, request))

    def _too_long(self, conn: socket.socket, caller: Caller) -> None:
        self._refusals.refused(caller.uid, f"a request line longer than {self._max_line} "
                               "bytes")
        self._send(conn, P.error(P.TOO_LONG, f"request line longer than {self._max_line} "
                                 "bytes; closing the connection"))

    def _watch(self, conn: socket.socket, caller: Caller, slot: Slot, answers: bool) -> None:
        sub = self._api.subscribe(caller, answers)
        self._quotas.start_watch(slot)
        try:
            self._send(conn, P.ok(watching=True, caller=caller.to_dict()))
            while not self._stopping.is_set():
                if slot.evicted.is_set():
                    with contextlib.suppress(_Gone):
                        self._send(conn, P.error(P.BUSY, "this watch was closed to make room "
                                                 "for a newer connection of your account"))
                    return
                if sub.dropped:
                    with contextlib.suppress(_Gone):
                        self._send(conn, P.error(P.BUSY, "you fell too far behind the "
                                                 "events; reconnect to watch again"))
                    return
                item = sub.get(_POLL)
                if item is not None:
                    self._send(conn, item.payload)
                elif _peer_gone(conn):
                    return
        finally:
            self._api.unsubscribe(sub)

    def _send(self, conn: socket.socket, obj: Any) -> None:
        self._send_bytes(conn, P.encode(obj))

    def _send_bytes(self, conn: socket.socket, data: bytes) -> None:
        try:
            # A client that does not read must not hold this thread forever.
            conn.settimeout(self._send_timeout)
            conn.sendall(data)
            conn.settimeout(self._idle)
        except OSError as exc:  # TimeoutError, EPIPE, ECONNRESET
            raise _Gone from exc


def _encoded(handle: Callable[[Caller, P.Request], Any], caller: Caller,
             request: P.Request) -> bytes:
    return P.encode(handle(caller, request))


def _peer_gone(conn: Any) -> bool:
    """True when the client closed its end (input during a watch is read and ignored)."""
    own = getattr(conn, "peer_gone", None)
    if own is not None:  # a connection select() cannot wait on (a Windows pipe)
        return bool(own())
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return bool(conn.recv(4096) == b"")
    except OSError:
        return True


class UnixListener:
    """The Unix socket at ``path`` (0666), each caller named by the kernel through the
    platform transport's ``peer`` (SO_PEERCRED on Linux)."""

    def __init__(self, path: Path, admin_group: str, peer: PeerCredentials) -> None:
        self.path = path
        self.admin_group = admin_group
        self.peer = peer
        self.sock = _bind(path)
        self.sock.settimeout(_POLL)

    def accept(self) -> tuple[socket.socket, Caller] | None:
        try:
            conn, _addr = self.sock.accept()
        except TimeoutError:
            return None
        try:
            return conn, identify(conn, self.admin_group, self.peer)
        except OSError as exc:
            log.debug("cannot tell who connected: %s", exc)
            conn.close()
            return None

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _bind(path: Path) -> socket.socket:
    """A listening socket at ``path`` (0666), replacing a stale one left by a killed run."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o755, parents=True)
    try:
        st = path.lstat()
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(2.0)
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody answers: left behind by a run that was killed
        else:
            raise ServiceRunningError(f"a camguard service already answers at {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        # Everyone may connect; the kernel tells us who did, and each request is checked.
        os.chmod(path, 0o666)  # noqa: S103 - authorization is per request (SO_PEERCRED)
        # The kernel's largest queue (somaxconn): a burst from one account must not fill it
        # before the accept loop can refuse that account (its quota is checked on accept).
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock
