"""SIGTERM and SIGINT end the tray's event loop cleanly (split from shell.py)."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Callable

from PySide6.QtCore import QSocketNotifier
from PySide6.QtWidgets import QApplication

log = logging.getLogger("camguard.ui.shell")


def quit_on_signals(app: QApplication) -> Callable[[], None]:
    """SIGTERM and SIGINT quit the event loop cleanly.

    Python runs signal handlers only between bytecodes, and Qt's loop runs in C++; the
    wake-up fd (signal.set_wakeup_fd) makes the C-level handler write to a socket that a
    QSocketNotifier watches, so the loop wakes at once, without a polling timer.
    """
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    old_fd = signal.set_wakeup_fd(writer.fileno())
    old = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)

    def woke() -> None:
        with contextlib.suppress(OSError):
            data = reader.recv(64)
            if {signal.SIGTERM, signal.SIGINT} & set(data):
                log.info("signal received; quitting")
                app.exit(0)

    notifier.activated.connect(woke)

    def restore() -> None:
        notifier.setEnabled(False)
        signal.set_wakeup_fd(old_fd)
        for s, handler in old.items():
            signal.signal(s, handler)
        reader.close()
        writer.close()

    return restore
