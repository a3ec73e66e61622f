"""One tray per user: a local socket the first instance listens on; a second one says "show".

The socket lives in ``$XDG_RUNTIME_DIR`` (private to the user, 0700) rather than /tmp,
where another user could squat the name first; ``CAMGUARD_STATE_DIR`` (tests, IT images)
moves it next to camguard's other state. The name carries the uid either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from camguard.core.text import json_text
from camguard.store import paths
from camguard.ui.bridge import Worker

log = logging.getLogger(__name__)

SHOW = b"show\n"
# `camguard tray --answer-alert` (a desktop shortcut): the popup takes the keyboard.
ANSWER = b"answer\n"
# `camguard status --json` (cli/tray_status.py): the running tray answers with its status
# document, one line of JSON, and closes; an empty answer means "look yourself".
STATUS = b"status\n"
CONNECT_MS = 1000


def instance_name(uid: int | None = None) -> str:
    """The socket path (or, when no private folder fits, a plain per-uid name)."""
    return paths.tray_socket(uid)


class SingleInstance(QObject):
    """``claim()`` once at start-up. The first instance gets ``show_requested`` whenever a
    later one starts; a later one calls :meth:`ask_running_to_show` and exits."""

    show_requested = Signal()
    answer_requested = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or instance_name()
        self._server: QLocalServer | None = None
        self._conns: list[QLocalSocket] = []
        self._status: Callable[[Callable[[bytes], None]], None] | None = None

    def answer_status(self, start: Callable[[Callable[[bytes], None]], None]) -> None:
        """Answer ``status`` requests: ``start(reply)`` begins building the document off
        the GUI thread and calls ``reply`` with its bytes (b"" when it failed) on it."""
        self._status = start

    def claim(self) -> bool:
        """True if this is the first instance (it now listens); False if one is running."""
        if self._running():
            return False
        # Nobody answers: a socket file left by a camguard that crashed. Replace it.
        QLocalServer.removeServer(self.name)
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            if self._running():  # lost a race with an instance starting at the same time
                return False
            log.warning("cannot listen on %s (%s); a second camguard will not be noticed",
                        self.name, server.errorString())
            return True
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def ask_running_to_show(self) -> bool:
        """Tell the running instance to show itself; True if the message was delivered."""
        return self.tell_running(SHOW)

    def tell_running(self, message: bytes) -> bool:
        """Send ``message`` (SHOW or ANSWER) to the running instance; True if delivered."""
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        if not sock.waitForConnected(CONNECT_MS):
            return False
        sock.write(message)
        ok = sock.waitForBytesWritten(CONNECT_MS)
        sock.disconnectFromServer()
        return bool(ok)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._conns.clear()

    def _running(self) -> bool:
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        alive = sock.waitForConnected(CONNECT_MS)
        if alive:
            sock.disconnectFromServer()
        return bool(alive)

    @Slot()
    def _accept(self) -> None:
        server = self._server
        while server is not None and server.hasPendingConnections():
            conn = server.nextPendingConnection()
            self._conns.append(conn)  # the server owns it; this keeps its wrapper
            conn.readyRead.connect(self._ready)
            conn.disconnected.connect(self._gone)
            if conn.bytesAvailable():
                self._read(conn)

    @Slot()
    def _ready(self) -> None:
        conn = self.sender()
        if isinstance(conn, QLocalSocket):
            self._read(conn)

    @Slot()
    def _gone(self) -> None:
        conn = self.sender()
        if isinstance(conn, QLocalSocket) and conn in self._conns:
            self._conns.remove(conn)
            conn.deleteLater()

    def _read(self, conn: QLocalSocket) -> None:
        data = bytes(conn.readAll().data())
        if STATUS.strip() in data.split():
            self._answer_status(conn)
        elif ANSWER.strip() in data.split():
            log.info("asked to hand the alert popup the keyboard")
            self.answer_requested.emit()
        elif SHOW.strip() in data:
            log.info("another camguard was started; showing this one")
            self.show_requested.emit()


    def _answer_status(self, conn: QLocalSocket) -> None:
        def reply(data: bytes) -> None:
            if conn not in self._conns:  # the asker gave up: its socket is gone
                return
            log.info("answered a status request (%d bytes)", len(data))
            if data:
                conn.write(data)
                conn.flush()
            conn.disconnectFromServer()

        if self._status is None:
            reply(b"")
            return
        try:
            self._status(reply)
        except Exception:
            log.exception("answering a status request")
            reply(b"")


def status_answer(io: Worker, doc: Callable[[], Mapping[str, Any]]
                  ) -> Callable[[Callable[[bytes], None]], None]:
    """How the running tray answers ``camguard status --json`` (ui/single_instance.py):
    its monitor's document, built on the io lane (origins may read files), one line."""
    def encode() -> bytes:
        return (json_text(doc(), separators=(",", ":")) + "\n").encode()

    def start(reply: Callable[[bytes], None]) -> None:
        if not io.submit(encode, reply, lambda _exc: reply(b"")):
            reply(b"")

    return start


def answer_running_tray() -> bool:
    """``camguard tray --answer-alert``: ask the running tray to hand its alert popup the
    keyboard; False when no tray answers."""
    _app = QCoreApplication.instance() or QCoreApplication(["camguard"])
    return SingleInstance().tell_running(ANSWER)
