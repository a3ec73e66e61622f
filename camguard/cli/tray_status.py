"""``camguard status`` (``--json`` or text) answered by this account's running tray (issue 16).

A running tray already watches every camera and microphone: its monitor's state is what
one look would find, and more (it saw opens a look cannot see without privileges, and
since when each use runs). Asking it costs a socket round trip instead of loading and
running the whole detection (docs/benchmarks.md, "Command start-up"). The tray answers on
its single-instance socket (ui/single_instance.py) with the document that
app/guard_local.status_document builds for one look too, so the output is the same
document either way.

Trust: the socket is in a folder private to the account (``$XDG_RUNTIME_DIR``, or
camguard's state folder); where no such folder exists it is a plain name in the shared
temp folder, which another account could create first. So the answer counts only when the
kernel says the process at the other end runs as this account (the platform's
transport reads it: SO_PEERCRED). Anything
else (no tray, another account's socket, a slow, silent or malformed answer) is None, and
the command looks for itself as before.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from camguard.platform import service_transport
from camguard.store.paths import tray_socket

if TYPE_CHECKING:
    from camguard.app.guard import Status

log = logging.getLogger(__name__)

REQUEST = b"status\n"  # ui/single_instance.STATUS (no Qt here)
MAX_ANSWER = 16 * 1024 * 1024  # bytes; a status document is a few KB
TIMEOUT = 3.0  # seconds for the whole exchange; then the command looks itself


def socket_path(name: str | None = None) -> str:
    """Where the tray listens: its name, or Qt's temp folder for a plain name."""
    name = name or tray_socket()
    if os.path.isabs(name):
        return name
    # QDir::tempPath(); a shared folder: the peer check in tray_status decides trust.
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", name)  # noqa: S108


def tray_status(path: str | None = None, *, timeout: float = TIMEOUT) -> dict[str, Any] | None:
    """The running tray's status document, or None when no tray of this account answers
    it in time with one."""
    path = path or socket_path()
    try:
        os.stat(path)
    except OSError:
        return None  # no tray (the common case: no connect attempt at all)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        _pid, uid, _gid = service_transport().peer_credentials(sock)  # SO_PEERCRED
        if uid != os.getuid():
            log.warning("%s belongs to another account (uid %d): not asked", path, uid)
            return None
        sock.sendall(REQUEST)
        chunks: list[bytes] = []
        size = 0
        while chunk := sock.recv(65536):
            size += len(chunk)
            if size > MAX_ANSWER:
                log.warning("the tray's status answer is over %d bytes: ignored", MAX_ANSWER)
                return None
            chunks.append(chunk)
    except OSError as exc:  # refused (a stale socket file), timed out, reset
        log.info("the running tray did not answer (%s); looking here", exc)
        return None
    finally:
        sock.close()
    return _document(b"".join(chunks))


def _document(data: bytes) -> dict[str, Any] | None:
    if not data:
        return None  # the tray could not build it: look here
    try:
        doc = json.loads(data)
    except ValueError:
        log.warning("the tray's status answer is not JSON: ignored")
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("devices"), list) \
            or not isinstance(doc.get("degraded"), list) \
            or not isinstance(doc.get("coverage"), list):
        log.warning("the tray's status answer is not a status document: ignored")
        return None
    return doc


def tray_answer(doc: dict[str, Any]) -> Status | None:
    """The tray's document read into the state the text ``status`` prints, as the
    service's is (app/service_decode.py); None when it does not read as one (the command
    then looks itself)."""
    from camguard.app.guard import Status
    from camguard.app.service_decode import state_from_dict

    try:
        return Status(state_from_dict(doc), doc)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        log.warning("the tray's status answer does not read as a state (%s): ignored",
                    type(exc).__name__)
        return None
