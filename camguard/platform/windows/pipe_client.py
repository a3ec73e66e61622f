"""The client's side of the named pipe (the CLI and the tray reaching the Windows service):
open the pipe, then make sure the process serving it is the service, not an account that
got to the name first to collect passwords and hand out forged answers: the pipe
counterpart of service.client.check_server (socket owner and SO_PEERCRED).

The pipe is opened with SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, so whoever serves
it can learn who the client is but never act as the client (no impersonation level).
Pure decisions here (tested on Linux over FakePipeIO); the Windows calls are
pipe_win32.Win32PipeIO's ``open_client`` and ``server_sid`` (NEVER RUN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from camguard.core.text import literal
from camguard.platform.windows.pipe_authz import LOCAL_SYSTEM
from camguard.platform.windows.pipe_server import PipeConnection, PipeIO
from camguard.service.client import ServiceImpostor, ServiceUnavailable


class ClientPipeIO(PipeIO, Protocol):
    def open_client(self, timeout: float | None) -> Any:
        """A connected handle; OSError (no such pipe, all instances busy past timeout)."""
        ...

    def server_sid(self, handle: Any) -> str:
        """The user SID of the process serving the pipe (GetNamedPipeServerProcessId)."""
        ...

    def own_sid(self) -> str: ...


def server_refusal(server: str, own: str) -> str | None:
    """Why the client must not talk to this server; None when it is LocalSystem (the
    service) or the client's own account (which cannot fool itself)."""
    if server in (LOCAL_SYSTEM, own):
        return None
    return f"it is served by {literal(server, 200)}, not LocalSystem"


def connect(io: ClientPipeIO, address: Path, timeout: float | None) -> PipeConnection:
    """A checked connection to the service at ``address``."""
    try:
        handle = io.open_client(timeout)
    except OSError as exc:
        raise ServiceUnavailable(f"no camguard service at {address}: "
                                 f"{exc.strerror or exc}") from exc
    conn = PipeConnection(io, handle)
    try:
        why = server_refusal(io.server_sid(handle), io.own_sid())
    except OSError as exc:
        conn.close()
        raise ServiceUnavailable(f"cannot tell who serves {address}: {exc}") from exc
    if why is not None:
        conn.close()
        raise ServiceImpostor(f"{address} is not the camguard service: {why}; refusing to "
                              "use it")
    conn.settimeout(timeout)
    return conn
