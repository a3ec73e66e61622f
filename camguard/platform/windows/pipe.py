"""The service's transport on Windows: the named pipe ``\\\\.\\pipe\\camguard`` (local
clients only, an ACL that admits SYSTEM, administrators and interactive users), and who
is calling. Thin pywin32 adapters; the decision is pipe_authz.authorize.

Identity comes from the connection, not from a pid: the server impersonates the client
(ImpersonateNamedPipeClient) and reads the thread token's user and groups, so a pid reused
between connect and check cannot lend another process's identity.
GetNamedPipeClientProcessId gives the pid, for display and for "never end the caller".
NEVER RUN: there is no Windows machine here.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from camguard.platform.windows.pipe_authz import PipeCaller

PIPE_NAME = "\\\\.\\pipe\\camguard"
# SYSTEM and Builtin Administrators: full access; Interactive users: read and write.
# Everyone else (network logons, anonymous, services) has no entry, so no access.
PIPE_SDDL = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GRGW;;;IU)"
PIPE_REJECT_REMOTE_CLIENTS = 0x8
TOKEN_USER, TOKEN_GROUPS = 1, 2
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000


class NamedPipeTransport:
    """platform.base.ServiceTransport for a named pipe, and service.server's
    ListeningTransport: the service serves through :meth:`listener` (pipe_server.py) and
    tells whose a process is with :meth:`lookup`. There is no socket on Windows:
    :meth:`peer_credentials` refuses."""

    def default_address(self) -> Path:
        return Path(PIPE_NAME)

    def listener(self, address: Path, admin_group: str) -> Any:
        """pipe_server.PipeListener on ``address`` (a ``\\\\.\\pipe\\`` name); OSError when
        the name is taken or pywin32 is missing."""
        from camguard.platform.windows.pipe_server import PipeListener, admin_sid

        try:
            from camguard.platform.windows.pipe_win32 import Win32PipeIO

            io = Win32PipeIO(str(address))
        except ImportError as exc:
            raise OSError(f"the named pipe needs pywin32: {exc}") from None
        return PipeListener(io, admin_sid(admin_group, io.account_sid))

    @staticmethod
    def connect(address: Path, timeout: float | None) -> Any:
        """The client's checked connection (pipe_client.connect): ServiceUnavailable when
        nothing serves ``address`` or pywin32 is missing, ServiceImpostor when an account
        other than LocalSystem (or the caller's own) serves it."""
        from camguard.platform.windows.pipe_client import connect
        from camguard.service.client import ServiceUnavailable

        try:
            from camguard.platform.windows.pipe_win32 import Win32PipeIO

            io = Win32PipeIO(str(address))
        except ImportError as exc:
            raise ServiceUnavailable(f"the named pipe needs pywin32: {exc}") from None
        return connect(io, address, timeout)

    @staticmethod
    def lookup(pid: int) -> Any:
        """service.authorization.Target of a process: its start time and its account's
        number (pipe_server.sid_uid of its token's user SID); None when it cannot be read."""
        import psutil

        from camguard.platform.windows.pipe_server import sid_uid
        from camguard.service.authorization import Target

        try:
            sid = process_sid(pid)
            return Target(pid, psutil.Process(pid).create_time(), sid_uid(sid))
        except (psutil.Error, OSError, ValueError, ImportError):
            return None

    def peer_credentials(self, sock: socket.socket) -> tuple[int, int, int]:
        raise OSError("a named pipe has no socket peer: the Windows service identifies its "
                      "caller from the pipe handle (NamedPipeTransport.caller)")

    @staticmethod
    def caller(pipe: Any) -> PipeCaller:
        """The client of a connected pipe handle (server side). OSError when Windows will
        not say (the caller is then refused)."""
        import win32api  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32pipe  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import win32security  # type: ignore[import-not-found, import-untyped, unused-ignore]

        pid = int(win32pipe.GetNamedPipeClientProcessId(pipe))
        win32pipe.ImpersonateNamedPipeClient(pipe)
        try:
            token = win32security.OpenThreadToken(win32api.GetCurrentThread(),
                                                  win32security.TOKEN_QUERY, True)
        finally:
            win32security.RevertToSelf()
        user_sid, _attrs = win32security.GetTokenInformation(token, TOKEN_USER)
        groups = win32security.GetTokenInformation(token, TOKEN_GROUPS)
        text = win32security.ConvertSidToStringSid
        return PipeCaller(pid, text(user_sid), tuple((text(s), int(a)) for s, a in groups))


def process_sid(pid: int) -> str:
    """The user SID of a process's token (OpenProcess with limited query rights, then
    OpenProcessToken). OSError when Windows will not say."""
    import pywintypes  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import win32api  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import win32security  # type: ignore[import-not-found, import-untyped, unused-ignore]

    try:
        proc = win32api.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        try:
            token = win32security.OpenProcessToken(proc, win32security.TOKEN_QUERY)
            user_sid, _attrs = win32security.GetTokenInformation(token, TOKEN_USER)
            return str(win32security.ConvertSidToStringSid(user_sid))
        finally:
            win32api.CloseHandle(proc)
    except pywintypes.error as exc:
        raise OSError(exc.winerror, exc.strerror) from None
