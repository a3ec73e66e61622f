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


class NamedPipeTransport:
    """platform.base.ServiceTransport for a named pipe. There is no socket on Windows:
    :meth:`peer_credentials` refuses, and the Windows service calls :meth:`caller`."""

    def default_address(self) -> Path:
        return Path(PIPE_NAME)

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
