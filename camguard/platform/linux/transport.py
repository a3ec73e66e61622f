"""The service's transport on Linux: an AF_UNIX stream socket, whose peer the kernel names
(SO_PEERCRED). Its own module so that a command that asks the service does not build the
platform (backend.py) to find it (issue 16)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


class UnixSocketTransport:
    """AF_UNIX stream socket; the peer's identity from SO_PEERCRED (socket(7))."""

    def default_address(self) -> Path:
        from camguard.service.client import default_socket

        return default_socket()

    def peer_credentials(self, sock: socket.socket) -> tuple[int, int, int]:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        pid, uid, gid = _UCRED.unpack(raw)
        return pid, uid, gid
