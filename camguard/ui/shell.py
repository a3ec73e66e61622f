"""Builds the tray application around a Monitor, runs Qt's event loop, and shuts it all down.

The caller (``camguard tray``) builds the detection (a Monitor, or the service's event
stream), the kill switch and the :class:`~camguard.ui.tray_options.TrayOptions`; this module adds
the history store, the controller, its views, windows and notifications, and wires them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from camguard.core.blocks import BlockManager, ProcessKiller
from camguard.core.clock import Clock
from camguard.core.decision import DecidedBy
from camguard.core.models import Degraded, HealthEvent
from camguard.core.text import literal
from camguard.monitor import Sink
from camguard.platform import origin_of
from camguard.store.allowlist import AllowList
from camguard.store.history import HistoryStore
from camguard.store.ui_settings import UiSettings, settings_in_force
from camguard.ui.adapters import (
    Actions,
    Allower,
    HistoryRecorder,
    NullAllow,
    NullHistory,
    RuleAllower,
)
from camguard.ui.alert import AlertPopup
from camguard.ui.alert_routing import AlertRouter, connect_alert_events
from camguard.ui.asking import started
from camguard.ui.assets import icon_path, load_icon
from camguard.ui.bridge import MonitorBridge
from camguard.ui.controller import AppController
from camguard.ui.feedback import FeedbackRouter
from camguard.ui.gc_guard import GuiThreadCollector
from camguard.ui.lock_gate import LockGate
from camguard.ui.main_window import MainWindow
from camguard.ui.notifications import DesktopNotifier
from camguard.ui.ports import AlertSettings, AllowPort, HistoryPort
from camguard.ui.retention import Retention
from camguard.ui.settings_support import password_prompt
from camguard.ui.signals import quit_on_signals
from camguard.ui.single_instance import SingleInstance, status_answer
from camguard.ui.status_window import StatusWindow
from camguard.ui.tray import TrayIcon
from camguard.ui.tray_options import TrayOptions, tray_alert_settings
from camguard.ui.windows import Windows, history_source

log = logging.getLogger(__name__)

HEARTBEAT_MS = 60_000
PROBLEMS = "settings"  # the degraded "source" that carries settings and policy problems


class EventSource(Protocol):
    """Where usage events come from: a :class:`~camguard.monitor.Monitor`, or the service's
    event stream in service mode. Sinks are called on its own thread."""

    def add_sink(self, sink: Sink) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


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
    options: TrayOptions | None = None
    windows: Windows | None = None
    gate: LockGate | None = None
    router: AlertRouter | None = None
    retention: Retention | None = None
    feedback: FeedbackRouter | None = None
    main: MainWindow | None = None  # what "Open camguard" shows (holds the status panel)


def run_tray(monitor: EventSource, clock: Clock, *, killer: ProcessKiller | None = None,
             blocks: BlockManager | None = None, settings: AlertSettings | None = None,
             open_store: Callable[[], HistoryStore | None] | None = None,
             argv: Sequence[str] = ("camguard",), options: TrayOptions | None = None) -> int:
    """Run the tray until Quit or SIGTERM/SIGINT; 0 also when another instance was asked to
    show itself instead. ``open_store`` (app/tray.open_history) is called only once this
    process is the running tray: opening closes an earlier run's orphaned sessions."""
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
    collector = GuiThreadCollector(app)  # Qt objects die on the GUI thread (gc_guard.py)
    collector.start()
    parts = build(app, monitor, clock, killer=killer, blocks=blocks,
                  settings=settings or AlertSettings(),
                  store=open_store() if open_store is not None else None, options=options)
    instance.show_requested.connect(parts.controller.request_show)
    instance.answer_requested.connect(parts.popup.take_keys)
    if options is not None and options.status_doc is not None:
        instance.answer_status(status_answer(parts.controller.io, options.status_doc))
    parts.cleanups.append(instance.close)
    parts.cleanups.append(quit_on_signals(app))
    start(parts, monitor)
    log.info("tray ready: %s", "tray icon" if parts.tray else "main window (no tray host)")
    try:
        app.exec()
    finally:
        shutdown(parts, monitor)
        collector.stop()
    return 0


def build(app: QApplication, monitor: EventSource, clock: Clock, *,
          killer: ProcessKiller | None = None, blocks: BlockManager | None = None,
          settings: AlertSettings | None = None, store: HistoryStore | None = None,
          options: TrayOptions | None = None) -> TrayApp:
    """Create and wire every part; adds the history, event-log and UI sinks to ``monitor``
    (not started: :func:`start` does that)."""
    o = options or TrayOptions()
    settings = settings or AlertSettings()
    history, allow = _history_ports(store, clock)
    if o.rules is not None and o.rule_file is not None and isinstance(allow, Allower | NullAllow):
        # One model of trust: "Always allow" writes a rule the rules judge then applies.
        allow = RuleAllower(allow, o.rule_file, clock)
    served = o.history is not None  # the service's history is the history: no second copy
    if served:
        history = o.decisions or NullHistory("the camguard service keeps the history")
    elif isinstance(history, HistoryRecorder):
        monitor.add_sink(history)  # before the UI sink: the session exists when it is shown
    if o.events is not None:
        monitor.add_sink(o.events.monitor_sink)
    for sink in o.sinks:
        monitor.add_sink(sink)
    bridge = MonitorBridge(app)
    monitor.add_sink(bridge.sink)
    actions = o.actions or Actions(killer, blocks)
    controller = AppController(clock, actions, history, allow, settings, rules=o.rules,
                               parent=app, origin_of=origin_of,
                               freeze=o.freeze() if o.freeze is not None else None)
    bridge.event_received.connect(controller.handle_event)
    has_tray = QSystemTrayIcon.isSystemTrayAvailable()
    tray = TrayIcon(clock, app) if has_tray else None
    status = StatusWindow(clock)
    # The main window holds the status panel; with no tray it is camguard's only window.
    main = MainWindow(clock, status, query=history_source(o, store), coverage=o.coverage,
                      keep_open=not has_tray)
    popup = AlertPopup(settings, anchor=tray.geometry if tray else None)
    # Always made: the settings window can switch notifications on while camguard runs.
    icon = icon_path("camera")
    icons = {name: str(path) for name, file in (
        ("camera", "camera"), ("microphone", "microphone"), ("screen", "screen"),
        ("location", "location"), ("warning", "degraded"),
        ("error", "degraded")) if (path := icon_path(file)) is not None}
    notifier = DesktopNotifier(icon=str(icon) if icon else "", icons=icons,
                               expire_ms=int(settings.countdown * 1000), parent=app)
    parts = TrayApp(app, controller, popup, status, tray, notifier, store, options=o,
                    main=main)
    say = tray.show_message if tray is not None else status.show_message
    # Children of the controller: deleting it (tests build many trays) takes them along.
    parts.windows = Windows(clock, store, o, say, parent=controller)
    parts.gate = LockGate(o.lock, o.ask_password or password_prompt(None),
                          controller.say, controller.io,
                          service_lock=o.service_lock, parent=controller)
    ui = o.ui or UiSettings()
    if store is not None and not served:
        parts.retention = Retention(store, clock, controller.io, ui.retention_days,
                                    parent=controller)
    wire(parts)
    if o.events is not None:
        connect_alert_events(controller, o.events)
    if store is not None and not served:
        beat = QTimer(controller)
        beat.setInterval(HEARTBEAT_MS)
        beat.timeout.connect(lambda: controller.io.submit(store.heartbeat))
        beat.start()
    if tray is not None:
        tray.show()
    else:
        main.show()
    return parts


def start(parts: TrayApp, monitor: EventSource) -> None:
    """Start watching, the controller's block checks, notifications and retention, and
    show the problems met while reading the settings."""
    o = parts.options
    started(parts.controller, o)  # o.on_start, and o.on_paused on each pause and resume
    parts.popup.warm_up()
    monitor.start()
    parts.controller.start()
    if parts.notifier is not None:
        parts.notifier.start()
    if parts.retention is not None:
        parts.retention.start()
    problems = parts.options.problems if parts.options is not None else ()
    show_problems(parts, problems)
    show_managed(parts)
    if parts.windows is not None and o is not None and o.first_run is not None:
        parts.windows.show_first_run()


def show_problems(parts: TrayApp, problems: Sequence[str]) -> None:
    """Settings and policy problems: in the tooltip, status window and menu (as a degraded
    part, so the icon says so) and in the log; an empty list clears them."""
    c = parts.controller
    for p in problems:
        log.warning("settings: %s", p)
    reason = "; ".join(literal(p, 300) for p in problems[:5])
    if len(problems) > 5:
        reason += f"; and {len(problems) - 5} more (see the log)"
    c.handle_event(HealthEvent(PROBLEMS, Degraded(PROBLEMS, reason) if problems else None,
                               c.clock.now()))


def _history_ports(store: HistoryStore | None, clock: Clock
                   ) -> tuple[HistoryPort, AllowPort]:
    if store is None:
        return NullHistory(), NullAllow()
    return HistoryRecorder(store), Allower(AllowList(store.db), clock, origin_of=origin_of)


def wire(parts: TrayApp) -> None:
    """Connect the controller, its views and the notifier (used by build() and tests)."""
    c, popup, status, tray = parts.controller, parts.popup, parts.status, parts.tray
    router = parts.router = parts.router or AlertRouter(c, popup, parent=c)
    c.alert_changed.connect(router.show_view)
    router.timed_out.connect(c.time_out)
    router.dismissed.connect(c.dismiss)
    popup.decided.connect(lambda alert_id, d: c.decide(alert_id, d, DecidedBy.POPUP))
    popup.timed_out.connect(c.time_out)
    popup.dismissed.connect(c.dismiss)
    gate = parts.gate
    views: list[TrayIcon | StatusWindow] = [status] if tray is None else [tray, status]
    for view in views:
        c.changed.connect(view.show_snapshot)
        view.act_requested.connect(c.act_on_user)
        view.block_requested.connect(c.block_kind)
        view.block_for_requested.connect(c.block_kind_for)
        view.panic_requested.connect(c.panic)
        view.resume_requested.connect(c.resume)
        view.history_requested.connect(c.request_history)
        view.settings_requested.connect(c.request_settings)
        if gate is None:
            view.unblock_requested.connect(c.unblock_kind)
            view.pause_requested.connect(c.pause)
            view.quit_requested.connect(c.request_quit)
        else:
            # The parental lock guards what would let a child undo a block or silence camguard.
            view.unblock_requested.connect(lambda kind, g=gate: g.unblock(kind, c.unblock_kind))
            view.pause_requested.connect(
                lambda secs, g=gate: g.run("Pause alerts", lambda: c.pause(secs)))
            view.quit_requested.connect(lambda g=gate: g.run("Quit camguard", c.request_quit))
    if tray is not None:
        _wire_answer(tray, popup, c.request_show)
    say = tray.show_message if tray is not None else status.show_message
    # Feedback goes to one place at a time and never lands on the popup (ui/feedback.py).
    parts.feedback = parts.feedback or FeedbackRouter(popup, parts.notifier, tray, status,
                                                      parent=c)
    c.feedback.connect(parts.feedback.show)
    _wire_main(parts)
    # exit(), not quit(): Qt 6's quit() first asks every window to close, and the status
    # window refuses when it is the only way to reach camguard (it minimises instead).
    c.quit_requested.connect(lambda: parts.app.exit(0))
    windows = parts.windows
    if windows is not None:
        c.history_requested.connect(windows.show_history)
        c.settings_requested.connect(windows.show_settings)
        windows.settings_changed.connect(lambda ui: settings_saved(parts, ui))
        windows.first_run_done.connect(lambda lock_set: set_up(parts, lock_set))
    else:
        c.history_requested.connect(lambda: say("History", "No history window here; run "
                                                "`camguard history` in a terminal."))
        c.settings_requested.connect(lambda: say("Settings", "No settings window here; "
                                                 "edit settings.json."))
    n = parts.notifier
    if n is not None:
        # Asked per alert: the settings window can switch the channel while camguard runs.
        c.alert_raised.connect(lambda alert: n.notify(alert) if c.settings.notifications
                               else None)
        c.alert_resolved.connect(n.withdraw)
        n.decided.connect(lambda alert_id, d: c.decide(alert_id, d, DecidedBy.NOTIFICATION))
        n.details_requested.connect(lambda _alert_id: c.request_show())
        n.fallback_requested.connect(say)


def _wire_main(parts: TrayApp) -> None:
    """"Open camguard" (a tray click, a second launch) shows the main window, which holds
    the status panel; a tray built without one shows the status window itself."""
    c, main = parts.controller, parts.main
    if main is not None:
        c.changed.connect(main.show_snapshot)
    c.show_requested.connect(lambda: _show(main if main is not None else parts.status))


def settings_saved(parts: TrayApp, ui: UiSettings) -> None:
    """The settings window saved: alerts and retention follow at once; the problems shown
    are read again (detection settings take effect at the next start)."""
    c = parts.controller
    c.settings = parts.popup.settings = tray_alert_settings(ui, c.settings)
    log.info("settings changed: countdown %.0f s, default %s, popup %s, notifications %s",
             c.settings.countdown, c.settings.default_decision.value, c.settings.popup,
             c.settings.notifications)
    if parts.retention is not None:
        parts.retention.days = ui.retention_days
        parts.retention.run()
    o = parts.options
    if o is not None:
        c.io.submit(lambda: settings_in_force(o.settings_file, o.policy().policy)[1],
                    lambda problems: show_problems(parts, problems))
    show_managed(parts)


def _wire_answer(tray: TrayIcon, popup: AlertPopup, show: Callable[[], None]) -> None:
    """A click on the icon shows the main window; the tray menu's "Answer the alert…"
    hands the popup the keyboard (the popup reached without a pointer)."""
    tray.show_requested.connect(show)
    tray.alert_waiting = lambda: popup.view is not None and popup.isVisible()
    tray.answer_requested.connect(popup.take_keys)


def show_managed(parts: TrayApp) -> None:
    """The tray menu's "Managed by …" line: a managed policy that locks something, or the
    parental lock (a small file read each; at start-up and after the settings change).
    The popup learns here whether a parental lock is set (what Escape answers)."""
    o, tray = parts.options, parts.tray
    if o is None:
        return
    lock_on = o.lock is not None and o.lock.is_set()
    c = parts.controller
    if c.settings.parental != lock_on:  # Escape on the popup gives the safe default
        c.settings = parts.popup.settings = replace(c.settings, parental=lock_on)
    if tray is None:
        return
    policy = o.policy().policy
    who = [f"Managed by {literal(policy.source, 120)}"] if policy.locked and policy.source \
        else []
    if lock_on:
        who.append("parental lock on")
    line = " · ".join(who)
    tray.managed = line[:1].upper() + line[1:]
    tray.rebuild_menu()


def set_up(parts: TrayApp, lock_set: bool) -> None:
    """The first-run window saved: the settings in force are read again (a parental lock
    set there makes an unanswered alert block)."""
    o = parts.options
    if o is None:
        return
    ui, _problems = settings_in_force(o.settings_file, o.policy().policy, parental=lock_set)
    settings_saved(parts, ui)


def _show(window: StatusWindow | MainWindow) -> None:
    window.showNormal()
    window.raise_()
    window.activateWindow()


def shutdown(parts: TrayApp, monitor: EventSource) -> None:
    """Stop the monitor first (no new events), then the notifier, workers and store."""
    log.info("quitting")
    parts.popup.hide()
    if parts.tray is not None:
        parts.tray.hide()
    monitor.stop()
    if parts.notifier is not None:
        parts.notifier.stop()
    if parts.windows is not None:
        parts.windows.shutdown()
    if parts.main is not None:
        parts.main.hide()
        parts.main.shutdown()
    # A kill or block in flight finishes rather than leaving a device half-blocked.
    parts.controller.workers.shutdown(wait=True)
    parts.controller.io.shutdown(wait=True)
    o = parts.options
    if o is not None and o.on_stop is not None:
        try:
            o.on_stop()
        except Exception:
            log.exception("stopping the event log failed")
    if parts.store is not None:
        with contextlib.suppress(Exception):
            parts.store.heartbeat()
        parts.store.close()
    for cleanup in reversed(parts.cleanups):
        cleanup()
