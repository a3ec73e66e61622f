"""The service's side of the named pipe, as camguard.service.server.Listener: each client gets
its own pipe instance, is identified from its token (pipe.NamedPipeTransport.caller) and
decided on by pipe_authz.authorize before a single request is read; the connection then
behaves like the socket the server already serves (recv, sendall, settimeout, shutdown,
close, and ``peer_gone`` where select() does not work).

The logic here is pure over a ``PipeIO`` (pipe_win32.Win32PipeIO on Windows, FakePipeIO in
the tests): which instance to make next, who is refused, timeouts, a connection closed once.

Account numbers: the service keys quotas, block owners and "your own process" checks by an
integer uid. On Windows that number is :func:`sid_uid`: 0 for LocalSystem (the service's
"root"), else a 48-bit digest of the SID above 2^32, the same in every run (a block's owner
is stored across restarts) and for the same account whether it connects or is looked up as
a process owner.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from camguard.core.text import literal
from camguard.platform.windows.pipe_authz import (
    LOCAL_SYSTEM,
    PipeCaller,
    Role,
    authorize,
    is_sid,
)
from camguard.service.authorization import Caller

log = logging.getLogger(__name__)

POLL = 0.25  # how long accept waits for a client (the server's loop checks for stop)
MAX_CHUNK = 65536
NOBODY = "S-1-0-0"  # the NULL SID: no token carries it enabled, so nobody is admin by it


def sid_uid(sid: str) -> int:
    """The service's integer for an account: 0 for LocalSystem, else 2^32 + the first 48
    bits of SHA-256 of the SID text (never a small number a Unix-minded check could mistake
    for a real uid; below 2^53, exact in any JSON reader)."""
    if sid == LOCAL_SYSTEM:
        return 0
    digest = hashlib.sha256(sid.encode("ascii", "replace")).digest()
    return (1 << 32) + int.from_bytes(digest[:6], "big")


def admin_sid(group: str, resolve: Callable[[str], str | None]) -> str:
    """The admin group as a SID: a SID as given; a name (``camguard-admins``,
    ``BUILTIN\\Administrators``) as Windows resolves it; NOBODY when it resolves to nothing
    (as on Linux: no such group, nobody is an admin but the system)."""
    if is_sid(group):
        return group
    try:
        found = resolve(group)
    except OSError:
        found = None
    if found is None or not is_sid(found):
        log.warning("the admin group %s does not exist: only LocalSystem is an admin",
                    literal(group, 200))
        return NOBODY
    return found


class PipeIO(Protocol):
    """The Windows calls (pipe_win32.Win32PipeIO). Handles are opaque. ``read`` returns
    b"" once the client is gone and raises TimeoutError after ``timeout`` s (None: no
    limit); ``cancel`` wakes a read or write blocked on another thread."""

    def create(self, first: bool) -> Any: ...

    def wait_connect(self, handle: Any, timeout: float) -> bool: ...

    def caller(self, handle: Any) -> PipeCaller: ...

    def account_name(self, sid: str) -> str: ...

    def read(self, handle: Any, size: int, timeout: float | None) -> bytes: ...

    def write(self, handle: Any, data: bytes, timeout: float | None) -> int: ...

    def gone(self, handle: Any) -> bool: ...

    def cancel(self, handle: Any) -> None: ...

    def close(self, handle: Any) -> None: ...


class PipeConnection:
    """One client's pipe instance, used by the server as it uses a socket."""

    def __init__(self, io: PipeIO, handle: Any) -> None:
        self.io, self.handle = io, handle
        self.timeout: float | None = None
        self._closed = False
        self._lock = threading.Lock()

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def setblocking(self, flag: bool) -> None:
        self.timeout = None if flag else 0.0

    def recv(self, size: int) -> bytes:
        if self._closed:
            raise OSError("the pipe is closed")
        return self.io.read(self.handle, min(size, MAX_CHUNK), self.timeout)

    def send(self, data: bytes | memoryview) -> int:
        if self._closed:
            raise OSError("the pipe is closed")
        return self.io.write(self.handle, bytes(data[:MAX_CHUNK]), self.timeout)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = self.send(view)
            if sent <= 0:
                raise BrokenPipeError("the client stopped reading")
            view = view[sent:]

    def peer_gone(self) -> bool:
        return self._closed or self.io.gone(self.handle)

    def shutdown(self, _how: int = 2) -> None:
        if not self._closed:
            self.io.cancel(self.handle)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.io.close(self.handle)


def to_caller(pc: PipeCaller, admin_group: str, name: Callable[[str], str]
              ) -> tuple[Caller | None, str]:
    """The service's Caller for a pipe client, or None (refused), and why."""
    role, why = authorize(pc, admin_group)
    if role is Role.REFUSED:
        return None, why
    try:
        shown = name(pc.user_sid)
    except OSError:
        shown = pc.user_sid  # a deleted account still has its SID
    return Caller(uid=sid_uid(pc.user_sid), gid=0, pid=max(pc.pid, 0), name=shown,
                  admin=role is Role.ADMIN), why


class PipeListener:
    """camguard.service.server.Listener over a named pipe. The first instance is made with
    FILE_FLAG_FIRST_PIPE_INSTANCE: if another process already serves the name (a squatter
    waiting for passwords), starting fails instead of sharing the name with it."""

    def __init__(self, io: PipeIO, admin_group: str) -> None:
        self.io = io
        self.admin_group = admin_group
        self.pending: Any = io.create(True)

    def accept(self) -> tuple[PipeConnection, Caller] | None:
        if not self.io.wait_connect(self.pending, POLL):
            return None
        handle, self.pending = self.pending, None
        try:
            # The next instance first, so the next client finds one while this one is read.
            self.pending = self.io.create(False)
            caller, why = to_caller(self.io.caller(handle), self.admin_group,
                                    self.io.account_name)
        except OSError as exc:
            log.debug("cannot tell who connected to the pipe: %s", exc)
            caller, why = None, ""
        if caller is None:
            if why:
                log.info("pipe client refused: %s", why)
            self.io.close(handle)
            if self.pending is None:
                self.pending = self.io.create(False)  # OSError: the server retries
            return None
        return PipeConnection(self.io, handle), caller

    def close(self) -> None:
        if self.pending is not None:
            self.io.close(self.pending)
            self.pending = None
