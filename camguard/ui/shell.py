"""Builds the tray application around a Monitor, runs Qt's event loop, and shuts it all down.

The caller (``camguard tray``) builds the detection and the kill switch; this module adds
the history store, the controller, its views and the notifications, and wires them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSocketNotifier, QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from camguard.core.blocks import BlockManager
from camguard.core.clock import Clock
from camguard.monitor import Monitor
from camguard.store.allowlist import AllowList
from camguard.store.db import default_path
from camguard.store.history import HistoryStore
from camguard.ui.adapters import (
    Actions,
    Allower,
    HistoryRecorder,
    NullAllow,
    NullHistory,
    ProcessKiller,
)
from camguard.ui.alert import AlertPopup
from camguard.ui.assets import icon_path, load_icon
from camguard.ui.bridge import MonitorBridge
from camguard.ui.controller import AppController
from camguard.ui.notifications import DesktopNotifier
from camguard.ui.ports import AlertSettings, AllowPort, DecidedBy, HistoryPort
from camguard.ui.single_instance import SingleInstance
from camguard.ui.status_window import StatusWindow
from camguard.ui.tray import TrayIcon

log = logging.getLogger(__name__)

HEARTBEAT_MS = 60_000


@dataclass
class TrayApp:
    """Everything the shell built, so tests and later windows can reach it."""

    app: QApplication
    controller: AppController
    popup: AlertPopup
    status: StatusWindow
    tray: TrayIcon | None
    notifier: DesktopNotifier | None
    store: HistoryStore | None
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def run_tray(monitor: Monitor, clock: Clock, *, killer: ProcessKiller | None = None,
             blocks: BlockManager | None = None, settings: AlertSettings | None = None,
             history_path: Path | None = None, argv: Sequence[str] = ("camguard",)) -> int:
    """Run the tray until Quit or SIGTERM/SIGINT; 0 also when another instance was asked to
    show itself instead."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(list(argv))
    app.setApplicationName("camguard")
    app.setDesktopFileName("camguard")
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(load_icon("idle"))
    instance = SingleInstance()
    if not instance.claim():
        delivered = instance.ask_running_to_show()
        log.info("camguard is already running; %s", "asked it to show itself" if delivered
                 else "it did not answer")
        return 0
    parts = build(app, monitor, clock, killer=killer, blocks=blocks,
                  settings=settings or AlertSettings(), history_path=history_path)
    instance.show_requested.connect(parts.controller.request_show)
    parts.cleanups.append(instance.close)
    parts.cleanups.append(_quit_on_signals(app))
    monitor.start()
    parts.controller.start()
    if parts.notifier is not None:
        parts.notifier.start()
    log.info("tray ready: %s", "tray icon" if parts.tray else "status window (no tray host)")
    try:
        app.exec()
    finally:
        shutdown(parts, monitor)
    return 0


def build(app: QApplication, monitor: Monitor, clock: Clock, *,
          killer: ProcessKiller | None, blocks: BlockManager | None,
          settings: AlertSettings, history_path: Path | None) -> TrayApp:
    """Create and wire every part; adds the history and UI sinks to ``monitor`` (not started)."""
    store, history, allow = _open_store(clock, history_path)
    if isinstance(history, HistoryRecorder):
        monitor.add_sink(history)  # before the UI sink: the session exists when it is shown
    bridge = MonitorBridge(app)
    monitor.add_sink(bridge.sink)
    controller = AppController(clock, Actions(killer, blocks), history, allow, settings,
                               parent=app)
    bridge.event_received.connect(controller.handle_event)
    has_tray = QSystemTrayIcon.isSystemTrayAvailable()
    tray = TrayIcon(clock, app) if has_tray else None
    status = StatusWindow(clock, keep_open=not has_tray)
    popup = AlertPopup(settings, anchor=tray.geometry if tray else None)
    notifier = None
    if settings.notifications:
        icon = icon_path("camera")
        notifier = DesktopNotifier(icon=str(icon) if icon else "",
                                   expire_ms=int(settings.countdown * 1000), parent=app)
    parts = TrayApp(app, controller, popup, status, tray, notifier, store)
    wire(parts)
    if store is not None:
        beat = QTimer(app)
        beat.setInterval(HEARTBEAT_MS)
        beat.timeout.connect(lambda: controller.io.submit(store.heartbeat))
        beat.start()
    if tray is not None:
        tray.show()
    else:
        status.show()
    return parts


def _open_store(clock: Clock, path: Path | None
                ) -> tuple[HistoryStore | None, HistoryPort, AllowPort]:
    try:
        store = HistoryStore(path or default_path(), clock)
    except Exception:
        # The store moves a damaged file aside by itself; this is for the unforeseen.
        log.exception("the history database cannot be opened; running without history")
        return None, NullHistory(), NullAllow()
    if store.warning:
        log.warning("history: %s", store.warning)
    closed = store.close_orphans(clock.now())
    if closed:
        log.info("closed %d session(s) left open by an earlier camguard", closed)
    return store, HistoryRecorder(store), Allower(AllowList(store.db), clock)


def wire(parts: TrayApp) -> None:
    """Connect the controller, its views and the notifier (used by build() and tests)."""
    c, popup, status, tray = parts.controller, parts.popup, parts.status, parts.tray
    c.alert_changed.connect(popup.show_view)
    popup.decided.connect(lambda alert_id, d: c.decide(alert_id, d, DecidedBy.POPUP))
    popup.timed_out.connect(c.time_out)
    popup.dismissed.connect(c.dismiss)
    views: list[TrayIcon | StatusWindow] = [status] if tray is None else [tray, status]
    for view in views:
        c.changed.connect(view.show_snapshot)
        view.act_requested.connect(c.act_on_user)
        view.block_requested.connect(c.block_kind)
        view.unblock_requested.connect(c.unblock_kind)
        view.pause_requested.connect(c.pause)
        view.resume_requested.connect(c.resume)
        view.history_requested.connect(c.request_history)
        view.settings_requested.connect(c.request_settings)
        view.quit_requested.connect(c.request_quit)
    if tray is not None:
        tray.show_requested.connect(c.request_show)
    say = tray.show_message if tray is not None else status.show_message
    c.message.connect(say)
    if tray is not None:
        c.message.connect(status.show_message)
    c.show_requested.connect(lambda: _show(status))
    # exit(), not quit(): Qt 6's quit() first asks every window to close, and the status
    # window refuses when it is the only way to reach camguard (it minimises instead).
    c.quit_requested.connect(lambda: parts.app.exit(0))
    # The history and settings windows come later (issue "The tray application", 4-5).
    c.history_requested.connect(lambda: say("History", "The history window is not built "
                                            "yet; run `camguard history` in a terminal."))
    c.settings_requested.connect(lambda: say("Settings", "The settings window is not built "
                                             "yet; edit settings.json."))
    n = parts.notifier
    if n is not None:
        c.alert_raised.connect(n.notify)
        c.alert_resolved.connect(n.withdraw)
        n.decided.connect(lambda alert_id, d: c.decide(alert_id, d, DecidedBy.NOTIFICATION))
        n.details_requested.connect(lambda _alert_id: c.request_show())
        n.fallback_requested.connect(say)


def _show(window: StatusWindow) -> None:
    window.showNormal()
    window.raise_()
    window.activateWindow()


def shutdown(parts: TrayApp, monitor: Monitor) -> None:
    """Stop the monitor first (no new events), then the notifier, workers and store."""
    log.info("quitting")
    parts.popup.hide()
    if parts.tray is not None:
        parts.tray.hide()
    monitor.stop()
    if parts.notifier is not None:
        parts.notifier.stop()
    # A kill or block in flight finishes rather than leaving a device half-blocked.
    parts.controller.workers.shutdown(wait=True)
    parts.controller.io.shutdown(wait=True)
    if parts.store is not None:
        with contextlib.suppress(Exception):
            parts.store.heartbeat()
        parts.store.close()
    for cleanup in reversed(parts.cleanups):
        cleanup()


def _quit_on_signals(app: QApplication) -> Callable[[], None]:
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
