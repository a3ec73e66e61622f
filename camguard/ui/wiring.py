"""The tray's parts beyond the icon and the popup: the history and settings windows, the
parental lock in front of quit, pause and unblock, the popup-or-notification routing of
alerts, history retention and the alert events of the event log.

Each part is a small QObject on the GUI thread that the shell creates and connects; none of
them opens a store by itself (everything comes in through :class:`TrayOptions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from camguard.core.clock import Clock
from camguard.core.decision import Choice
from camguard.core.models import DeviceKind, MonitorEvent
from camguard.core.text import literal
from camguard.store.allowlist import AllowList
from camguard.store.eventlog import EventLog, usage_fields
from camguard.store.history import HistoryStore
from camguard.store.parental_lock import LockGuard, require_unlock
from camguard.store.policy import NO_POLICY, PolicyStatus
from camguard.store.rules import RuleFile
from camguard.store.ui_settings import UiSettings, UiSettingsFile
from camguard.ui.alert import AlertPopup
from camguard.ui.bridge import Worker
from camguard.ui.controller import AppController
from camguard.ui.history_window import HistoryQuery, HistoryWindow, history_query
from camguard.ui.model import Alert, AlertView
from camguard.ui.ports import ActionsPort, AlertSettings, RulesPort
from camguard.ui.settings_dialog import (
    AutostartPort,
    SelftestRun,
    SettingsDialog,
    alert_settings,
    lock_unlocker,
    password_prompt,
)

log = logging.getLogger(__name__)

RETENTION_MS = 24 * 3600 * 1000
Say = Callable[[str, str], None]


def _no_policy() -> PolicyStatus:
    return PolicyStatus(NO_POLICY)


@dataclass
class TrayOptions:
    """What the tray needs beyond detection and the kill switch. ``camguard tray`` passes
    every part; tests and benchmarks pass what they exercise (the rest stays off)."""

    settings_file: UiSettingsFile = field(default_factory=UiSettingsFile)
    ui: UiSettings | None = None  # in force at start-up (retention; None: the defaults)
    problems: tuple[str, ...] = ()  # met while reading settings and policy: shown in the tray
    policy: Callable[[], PolicyStatus] = _no_policy  # read again each time settings open
    rule_file: RuleFile = field(default_factory=RuleFile)
    autostart: AutostartPort | None = None
    selftest: SelftestRun | None = None
    lock: LockGuard | None = None  # the parental lock (None: quit, pause, unblock are free)
    ask_password: Callable[[], str | None] | None = None  # None: a masked input dialog
    # Service mode: whether the service's own lock is set (unblock then sends the password).
    service_lock: Callable[[], bool] | None = None
    events: EventLog | None = None
    rules: RulesPort | None = None
    actions: ActionsPort | None = None  # instead of the local kill switch (service mode)
    # Service mode: the service's history is the history. The History window shows it and
    # the tray records no second copy of any session or decision in the user's database.
    history: HistoryQuery | None = None
    # Once this process is the running tray (not a second launch), before the first event;
    # and after the last one (the event log's camguard.started and camguard.stopped).
    on_start: Callable[[], None] | None = None
    on_stop: Callable[[], None] | None = None
    # More monitor sinks, added after the history and before the UI (e.g. the guard that
    # ends this account's openers of a blocked camera when camguard has no privileges).
    sinks: list[Callable[[MonitorEvent], None]] = field(default_factory=list)


def tray_alert_settings(ui: UiSettings, base: AlertSettings | None = None) -> AlertSettings:
    """The controller's settings from the UI settings, with the notification channel's
    popup part (settings_dialog.alert_settings predates it)."""
    return replace(alert_settings(ui, base), popup=ui.popup)


# -- the parental lock -------------------------------------------------------------------
class LockGate(QObject):
    """Asks for the parental-lock password before an intent goes through (GUI thread: the
    scrypt check takes about 50 ms, the dialog as long as the user needs)."""

    def __init__(self, guard: LockGuard | None, ask: Callable[[], str | None], say: Say,
                 io: Worker, *, service_lock: Callable[[], bool] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._guard = guard
        self._ask = ask
        self._say = say
        self._io = io
        self._service_lock = service_lock

    def run(self, what: str, action: Callable[[], None]) -> bool:
        """``action()`` now when no lock is set or the password is right; else say why
        (a wrong password says how long to wait). False when refused."""
        if self._guard is not None:
            answer = require_unlock(self._guard, self._ask)
            if not answer.ok:
                why = answer.message or "the parental lock refused"
                log.warning("%s refused by the parental lock: %s", what, why)
                self._say("Parental lock", f"{what}: {literal(why, 300)}")
                return False
        action()
        return True

    def unblock(self, kind: DeviceKind, unblock: Callable[[DeviceKind, str | None], None]
                ) -> None:
        what = f"Unblock {kind.value}"
        remote = self._service_lock
        if remote is None:
            self.run(what, lambda: unblock(kind, None))
            return

        def asked(is_set: bool) -> None:
            if not is_set:
                unblock(kind, None)
                return
            password = self._ask()
            if password is None:
                self._say("Parental lock", f"{what}: no password given")
                return
            unblock(kind, password)  # the service checks it and says why if it is wrong

        # The service's lock, asked off the GUI thread; on failure the service decides.
        self._io.submit(remote, asked, lambda _e: unblock(kind, None))


# -- alerts: the popup, or only the notification ------------------------------------------
class AlertRouter(QObject):
    """Shows the current alert in the popup; with the popup off, runs the same countdown
    without a window (the notification offers the answers)."""

    timed_out = Signal(int)
    dismissed = Signal(int)

    def __init__(self, controller: AppController, popup: AlertPopup,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._c = controller
        self._popup = popup
        self.view: AlertView | None = None  # the alert counted down without a window
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._expired)

    @Slot(object)
    def show_view(self, view: AlertView | None) -> None:
        if self._c.settings.popup:
            self._silent(None)
            self._popup.show_view(view)
        else:
            if self._popup.view is not None:
                self._popup.show_view(None)
            self._silent(view)

    def _silent(self, view: AlertView | None) -> None:
        old, self.view = self.view, view
        if view is None:
            self.timer.stop()
            return
        same = old is not None and old.alert.id == view.alert.id
        now_stopped = view.alert.stopped_at is not None and (
            not same or old is None or old.alert.stopped_at is None)
        s = self._c.settings
        if now_stopped:
            self.timer.start(max(0, int(s.stopped_linger * 1000)))
        elif not same:
            self.timer.start(max(0, int(s.countdown * 1000)))

    @Slot()
    def _expired(self) -> None:
        view, self.view = self.view, None
        if view is None:
            return
        if view.alert.stopped_at is not None:
            self.dismissed.emit(view.alert.id)
        else:
            self.timed_out.emit(view.alert.id)


# -- the history and settings windows ---------------------------------------------------
class Windows(QObject):
    """Opens the history window and the settings dialog on request (made on first use)."""

    settings_changed = Signal(object)  # UiSettings now in force

    def __init__(self, clock: Clock, store: HistoryStore | None, options: TrayOptions,
                 say: Say, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._clock = clock
        self._store = store
        self._options = options
        self._say = say
        self.history: HistoryWindow | None = None
        self.settings: SettingsDialog | None = None
        self._retired: list[SettingsDialog] = []

    @Slot()
    def show_history(self) -> None:
        query = self._options.history
        if query is None and self._store is not None:
            query = history_query(self._store)
        if query is None:
            self._say("History", "The history database could not be opened (see the log), "
                      "so there is no history to show.")
            return
        if self.history is None:
            self.history = HistoryWindow(query, self._clock)
        w = self.history
        if w.isVisible():
            w.refresh()
        _raise(w)

    @Slot()
    def show_settings(self) -> None:
        """Raise the open dialog, else open a new one over the files as they are now (the
        managed policy is read again: an administrator may have changed it)."""
        if self.settings is not None and self.settings.isVisible():
            _raise(self.settings)
            return
        if self.settings is not None:
            self._retired.append(self.settings)  # its pool may still finish a self-test
        o = self._options
        unlock = None
        if o.lock is not None:
            unlock = lock_unlocker(o.lock, o.ask_password or password_prompt(None))
        dlg = SettingsDialog(
            o.settings_file, self._clock,
            allowlist=AllowList(self._store.db) if self._store is not None else None,
            rules=o.rule_file, autostart=o.autostart, policy=o.policy(),
            selftest=o.selftest, unlock=unlock)
        dlg.settings_changed.connect(self.settings_changed)
        self.settings = dlg
        self._tidy()
        _raise(dlg)

    def _tidy(self) -> None:
        for old in list(self._retired):
            if old.pool.activeThreadCount() == 0:
                self._retired.remove(old)
                old.deleteLater()

    def shutdown(self) -> None:
        """Stop the history query thread and any self-test (when camguard quits)."""
        if self.history is not None:
            self.history.hide()
            self.history.shutdown()
            self.history.deleteLater()
            self.history = None
        for dlg in [*self._retired, *([self.settings] if self.settings else [])]:
            dlg.hide()
            dlg.shutdown()
            dlg.deleteLater()
        self._retired, self.settings = [], None


def _raise(w: Any) -> None:
    w.showNormal()
    w.raise_()
    w.activateWindow()


# -- retention ---------------------------------------------------------------------------
class Retention(QObject):
    """Deletes sessions older than ``days`` (0: keep forever) now and every 24 hours."""

    purged = Signal(int)  # how many sessions went (tests, logs)

    def __init__(self, store: HistoryStore, clock: Clock, io: Worker, days: int,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._clock = clock
        self._io = io
        self.days = days
        self.timer = QTimer(self)
        self.timer.setInterval(RETENTION_MS)
        self.timer.timeout.connect(self.run)

    def start(self) -> None:
        self.run()
        self.timer.start()

    @Slot()
    def run(self) -> None:
        days = self.days
        if days <= 0:
            return
        cutoff = self._clock.now() - days * 86400.0
        store = self._store

        def done(count: int) -> None:
            if count:
                log.info("history retention: %d session(s) older than %d day(s) deleted",
                         count, days)
            self.purged.emit(count)

        self._io.submit(lambda: store.purge_older_than(cutoff), done)


# -- alert events for the event log ------------------------------------------------------
_CHOICES = {Choice.ALLOW_ONCE.value: "allow-once", Choice.ALWAYS_ALLOW.value: "allow",
            Choice.KILL.value: "kill", Choice.BLOCK.value: "block", "ignore": "ignore"}


def connect_alert_events(controller: AppController, events: EventLog) -> None:
    """``alert.shown`` and ``alert.decided`` (docs/events.md), written on the io lane so a
    slow syslog target never holds the GUI thread."""
    io = controller.io

    def shown(alert: Alert) -> None:
        p = alert.usage.process
        who = "an unseen process" if p is None else f"{literal(p.name, 64)} (pid {p.pid})"
        io.submit(lambda: events.emit(
            "alert.shown", f"asking about {who} using the {alert.usage.device.kind.value}",
            alert_id=alert.id, **usage_fields(alert.usage)))

    def decided(alert: Alert, decision: str, by: str) -> None:
        choice = _CHOICES.get(decision, decision)
        who = "user" if by.startswith("user:") else by
        io.submit(lambda: events.emit(
            "alert.decided", f"alert {alert.id}: {choice} ({who})", alert_id=alert.id,
            choice=choice, by=who, duration="always" if choice == "allow" else "once",
            **usage_fields(alert.usage)))

    controller.alert_raised.connect(shown)
    controller.alert_decided.connect(decided)
