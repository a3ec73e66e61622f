"""One tray per user: a local socket the first instance listens on; a second one says "show".

The socket lives in ``$XDG_RUNTIME_DIR`` (private to the user, 0700) rather than /tmp,
where another user could squat the name first; ``CAMGUARD_STATE_DIR`` (tests, IT images)
moves it next to camguard's other state. The name carries the uid either way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from camguard.store import paths

log = logging.getLogger(__name__)

SHOW = b"show\n"
# `camguard tray --answer-alert` (a desktop shortcut): the popup takes the keyboard.
ANSWER = b"answer\n"
CONNECT_MS = 1000
# sun_path holds 108 bytes on Linux (unix(7)); a longer path cannot be a socket address.
MAX_SOCKET_PATH = 100


def instance_name(uid: int | None = None) -> str:
    """The socket path (or, when no private folder fits, a plain per-uid name)."""
    uid = os.getuid() if uid is None else uid
    name = f"camguard-tray-{uid}.sock"
    folder: Path | None = None
    if paths.state_dir_moved():
        folder = paths.private_dir(paths.state_dir())
    elif os.environ.get("XDG_RUNTIME_DIR") and Path(os.environ["XDG_RUNTIME_DIR"]).is_dir():
        folder = Path(os.environ["XDG_RUNTIME_DIR"])
    if folder is not None and len(str(folder / name)) <= MAX_SOCKET_PATH:
        return str(folder / name)
    return name  # Qt puts it in its temp folder; the uid keeps users apart


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
        if ANSWER.strip() in data.split():
            log.info("asked to hand the alert popup the keyboard")
            self.answer_requested.emit()
        elif SHOW.strip() in data:
            log.info("another camguard was started; showing this one")
            self.show_requested.emit()


def answer_running_tray() -> bool:
    """``camguard tray --answer-alert``: ask the running tray to hand its alert popup the
    keyboard; False when no tray answers."""
    _app = QCoreApplication.instance() or QCoreApplication(["camguard"])
    return SingleInstance().tell_running(ANSWER)
