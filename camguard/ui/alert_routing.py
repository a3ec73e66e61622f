"""Where an alert goes: the popup, or with the popup off only the notification with the same
countdown; and the alert events of the event log (``alert.shown``, ``alert.decided``)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from camguard.core.decision import Choice
from camguard.core.text import literal
from camguard.store.eventlog import EventLog
from camguard.ui.alert import AlertPopup
from camguard.ui.controller import AppController
from camguard.ui.model import Alert, AlertView


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
            alert_id=alert.id, **events.fields_of(alert.usage)))

    def decided(alert: Alert, decision: str, by: str) -> None:
        choice = _CHOICES.get(decision, decision)
        who = "user" if by.startswith("user:") else by
        io.submit(lambda: events.emit(
            "alert.decided", f"alert {alert.id}: {choice} ({who})", alert_id=alert.id,
            choice=choice, by=who, duration="always" if choice == "allow" else "once",
            **events.fields_of(alert.usage)))

    controller.alert_raised.connect(shown)
    controller.alert_decided.connect(decided)
