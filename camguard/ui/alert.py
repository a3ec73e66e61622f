"""The alert popup: names the app that turned a device on and asks what to do, without focus.

A frameless, always-on-top tool window near the tray that never takes keyboard focus (a
popup that grabs focus while someone types is a keylogger's friend and an annoyance). One
alert at a time; the controller keeps the queue and says "1 of 3". Every text a process
controls is a plain-text label rendered through :func:`camguard.core.text.literal`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from PySide6.QtCore import QElapsedTimer, QEvent, QPoint, QRect, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QEnterEvent, QGuiApplication, QHideEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from camguard.core.blocks import format_duration
from camguard.core.decision import Choice
from camguard.ui.alert_freeze import LetGoTimer
from camguard.ui.alert_keys import LABELS, AlertKeys, block_label, shown_text
from camguard.ui.alert_text import NO_DEVICE_KINDS, alert_text
from camguard.ui.assets import app_icon
from camguard.ui.elided import ElidedLabel, elided_label
from camguard.ui.elided import plain_label as plain_label  # noqa: PLC0414 (the windows' import)
from camguard.ui.model import AlertView
from camguard.ui.ports import AlertSettings

log = logging.getLogger(__name__)
WINDOW_TITLE = "camguard alert"
WIDTH = 520
MARGIN = 12
def placement(area: QRect, size: QSize, tray: QRect | None) -> QPoint:
    """Where the popup goes: the right edge of the free area, on the tray's side (top or
    bottom), past the tray icon when the free area still includes it (a panel that reserves
    no space), so a click meant for the tray icon always reaches it."""
    x = area.right() - size.width() - MARGIN + 1
    if tray is not None and tray.center().y() < area.center().y():
        y = max(area.top(), tray.bottom() + 1) + MARGIN
    elif tray is not None:
        y = min(area.bottom(), tray.top() - 1) - size.height() - MARGIN + 1
    else:
        y = area.bottom() - size.height() - MARGIN + 1
    if tray is not None and QRect(QPoint(x, y), size).intersects(tray):
        x = tray.left() - size.width() - MARGIN  # a tray at the left or right edge
    return QPoint(max(area.left(), x), max(area.top(), y))


class AlertPopup(QWidget):
    """Shows the controller's current alert; emits the user's answer.

    ``decided(alert_id, decision)`` for a button, ``timed_out(alert_id)`` when the countdown
    runs out (the controller applies the default), ``dismissed(alert_id)`` when an alert for
    an app that already stopped has been shown for ``stopped_linger`` seconds.
    """

    decided = Signal(int, str)
    timed_out = Signal(int)
    dismissed = Signal(int)
    hidden = Signal()  # off the screen (answered, timed out, or no alert left)

    def __init__(self, settings: AlertSettings | None = None,
                 anchor: Callable[[], QRect | None] | None = None) -> None:
        super().__init__(None, Qt.WindowType.Tool | Qt.WindowType.FramelessWindowHint
                         | Qt.WindowType.WindowStaysOnTopHint
                         | Qt.WindowType.WindowDoesNotAcceptFocus)
        self.settings = settings or AlertSettings()
        self._anchor = anchor
        self.setWindowTitle(WINDOW_TITLE)
        self.setObjectName("camguard-alert")
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setFixedWidth(WIDTH)
        self.view: AlertView | None = None
        self._clock = QElapsedTimer()
        self._deadline_ms = 0
        self._held_ms: int | None = None  # the time left, while the pointer is over us
        self._tick = QTimer(self)
        self._tick.setInterval(250)
        self._tick.timeout.connect(self._on_tick)
        self._let_go = LetGoTimer(self, self._refill)  # redraws when its app is let go
        self._build()

    # -- layout ------------------------------------------------------------------------
    def _build(self) -> None:
        frame = QFrame(self)
        frame.setObjectName("frame")
        frame.setFrameShape(QFrame.Shape.Box)
        frame.setLineWidth(2)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(frame)
        box = QVBoxLayout(frame)
        head = QHBoxLayout()
        self.icon_label = QLabel()
        self.icon_label.setFixedSize(48, 48)
        head.addWidget(self.icon_label)
        titles = QVBoxLayout()
        self.title_label = plain_label(bold=True)
        self.name_label = elided_label(bold=True)
        titles.addWidget(self.title_label)
        titles.addWidget(self.name_label)
        head.addLayout(titles, 1)
        self.position_label = plain_label()
        self.position_label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        head.addWidget(self.position_label, 0, Qt.AlignmentFlag.AlignTop)
        box.addLayout(head)
        middle = Qt.TextElideMode.ElideMiddle  # paths: the start and the file name matter
        self.exe_label = elided_label(mode=middle)
        self.process_label = elided_label()  # pid and user
        self.parents_label = elided_label()
        self.cmdline_label = elided_label()
        self.device_label = elided_label(mode=middle)
        self.time_label = plain_label()
        self.origin_label = elided_label()  # where the program comes from (its package)
        self.note_label = elided_label()
        # One more line of plain words: why camguard asks about this app again.
        # Up to three wrapped lines (the popup keeps one size: _fix_size reserves them).
        self.why_label = plain_label(bold=True)
        self.why_label.setWordWrap(True)
        self.details = (self.exe_label, self.origin_label, self.process_label,
                        self.parents_label, self.cmdline_label, self.device_label,
                        self.time_label, self.note_label, self.why_label)
        for label in self.details:
            box.addWidget(label)
        # The details take what they need; the rest is space above the countdown and the
        # buttons, which stay where they are from one alert to the next.
        box.addStretch(1)
        self.status_label = plain_label()
        box.addWidget(self.status_label)
        row = QHBoxLayout()
        self.buttons: dict[Choice, QPushButton] = {}
        for decision, text in LABELS.items():
            button = QPushButton(text)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setAutoDefault(False)
            button.clicked.connect(lambda _=False, d=decision: self._answer(d))
            # Four equal buttons: "Block microphone" does not push the others aside.
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            self.buttons[decision] = button
            row.addWidget(button, 1)
        box.addLayout(row)
        # Enter, Escape and Alt+letter, once the person clicked into the popup.
        self.keys = AlertKeys(self, self.buttons, self._answer, self._enter_choice,
                              self._escape)
        self._fix_size()

    def _fix_size(self) -> None:
        """One size for every alert, measured with every line filled: the buttons never
        move under a pointer that is about to click one."""
        for label in self.details:
            label.setVisible(True)
            if isinstance(label, ElidedLabel):
                label.set_full("Xg")
            else:
                label.setText("Xg\nXg\nXg" if label is self.why_label else "Xg")
        self.position_label.setText("10 of 10")
        self.setFixedSize(WIDTH, max(self.sizeHint().height(), self.minimumSizeHint().height()))
        self.position_label.setText("")

    def warm_up(self) -> None:
        """Pay Qt's first-show costs at start-up instead of when a camera turns on.

        Measured on Xvfb: the first popup took ~60 ms from open() to shown, later ones
        11-18 ms; the difference is the native window, the style and the glyph cache, which
        creating the window and rendering it once off screen build in advance.
        """
        self.ensurePolished()
        self.adjustSize()
        self.winId()  # creates the native window now
        self.grab()  # renders once, off screen: fonts and icons are cached

    # -- showing -----------------------------------------------------------------------
    @Slot(object)
    def show_view(self, view: AlertView | None) -> None:
        """Show ``view`` (None hides the popup). The same alert again is an update (its app
        stopped, or the queue grew): the countdown keeps running."""
        if view is None:
            self._tick.stop()
            self._let_go.stop()
            self.view = None
            self.hide()
            return
        same = self.view is not None and self.view.alert.id == view.alert.id
        was_stopped = same and self.view is not None and self.view.alert.stopped_at is not None
        self.view = view
        self._fill(view)
        self._let_go.follow(view.alert)
        if not same:
            self.keys.disarm()  # a new alert is read before a key answers it
            self._start_countdown(self.settings.countdown)
        if view.alert.stopped_at is not None and not was_stopped:
            self._start_countdown(self.settings.stopped_linger)
        self._on_tick()
        if not self.isVisible():
            self._place()
            self.show()
            self.raise_()
        if not same:
            # Tests and support scripts look for this line (and the window title).
            process = view.alert.usage.process
            log.info("alert shown: pid=%s", process.pid if process else "unknown")
            if log.isEnabledFor(logging.DEBUG):
                # Where each button is on screen: lets a support script (or the end-to-end
                # test) click it with xdotool; Qt widgets are not X windows of their own.
                log.debug("alert buttons: %s", " ".join(
                    f"{d.value}={c.x()},{c.y()}" for d, b in self.buttons.items()
                    for c in [b.mapToGlobal(b.rect().center())]))

    @Slot()
    def _refill(self) -> None:
        if self.view is not None:
            self._fill(self.view)
            self._let_go.follow(self.view.alert)  # a timer that fired early: once more

    def _fill(self, view: AlertView) -> None:
        alert = view.alert
        usage = alert.usage
        device = usage.device
        stopped = alert.stopped_at is not None
        text = alert_text(alert, time.time())
        self.title_label.setText(text.title)
        self.position_label.setText(f"{view.position} of {view.total}" if view.total > 1
                                    else "")
        self.buttons[Choice.BLOCK].setText(block_label(device.kind.value))
        self.buttons[Choice.BLOCK].setVisible(device.kind not in NO_DEVICE_KINDS)
        p = usage.process
        self.icon_label.setPixmap(app_icon(p).pixmap(48, 48))
        self.name_label.set_full(text.name)
        for label, line in ((self.exe_label, text.exe), (self.origin_label, text.origin),
                            (self.process_label, text.process),
                            (self.parents_label, text.parents),
                            (self.cmdline_label, text.cmdline),
                            (self.device_label, text.device), (self.note_label, text.note)):
            label.set_full(line)
            label.setVisible(bool(line))
        self.why_label.setText(text.why)
        self.why_label.setVisible(bool(text.why))
        self.time_label.setText("since " + time.strftime("%H:%M:%S", time.localtime(alert.at)))
        # Nothing to kill once an app has stopped; nothing to kill or allow that is unseen.
        self.buttons[Choice.KILL].setEnabled(p is not None and not stopped)
        self.buttons[Choice.ALWAYS_ALLOW].setEnabled(p is not None)
        for decision, button in self.buttons.items():
            button.setDefault(decision is self.settings.default_decision and not stopped)

    def _place(self) -> None:
        """In the tray's corner of the screen, beside the tray icon and never over it."""
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return
        tray = self._anchor() if self._anchor is not None else None
        self.move(placement(screen.availableGeometry(), self.size(),
                            tray if tray is not None and tray.isValid() else None))

    # -- countdown ---------------------------------------------------------------------
    def _start_countdown(self, seconds: float) -> None:
        self._clock.start()
        self._deadline_ms = max(0, int(seconds * 1000))
        self._held_ms = None
        self._tick.start()

    def remaining(self) -> float:
        if self._held_ms is not None:
            return self._held_ms / 1000
        return max(0.0, (self._deadline_ms - self._clock.elapsed()) / 1000)

    # The pointer over the popup holds the countdown: someone is reading it, or reaching
    # for a button, and the default must not land a moment before their click.
    def enterEvent(self, event: QEnterEvent) -> None:
        super().enterEvent(event)
        self._hold()

    def _hold(self) -> None:
        if self.view is not None and self._held_ms is None:
            self._held_ms = max(0, self._deadline_ms - self._clock.elapsed())
            self._tick.stop()
            self._on_tick()

    def take_keys(self) -> bool:
        """The person asked for the popup from the keyboard (the tray menu's "Answer the
        alert…", or ``camguard answer``): it takes focus, its keys work as after a click,
        and the countdown holds while they read (it starts again once the pointer leaves
        it, as after a pointer's visit). False: no alert is shown."""
        if self.view is None or not self.isVisible():
            return False
        self._hold()
        self.raise_()
        self.keys.arm()
        log.info("alert keys armed from the keyboard")
        return True

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.hidden.emit()

    def leaveEvent(self, event: QEvent) -> None:
        super().leaveEvent(event)
        held, self._held_ms = self._held_ms, None
        if held is not None:
            self._clock.start()
            self._deadline_ms = held
            if self.view is not None:
                self._tick.start()
                self._on_tick()

    @Slot()
    def _on_tick(self) -> None:
        view = self.view
        if view is None:
            self._tick.stop()
            return
        alert = view.alert
        left = self.remaining()
        if alert.stopped_at is not None:
            ran = format_duration(max(0.0, alert.stopped_at - alert.at))
            self.status_label.setText(f"Stopped after {ran}. Closing in {math.ceil(left)} s.")
        else:
            default = shown_text(self.buttons[self.settings.default_decision].text())
            self.status_label.setText(f"{default} in {math.ceil(left)} s")
        if self._held_ms is not None:
            self.status_label.setText(self.status_label.text() + " (paused)")
            return
        if left > 0:
            self._tick.setInterval(min(250, max(1, int(left * 1000))))
            return
        self._tick.stop()
        self.view = None
        self.hide()
        if alert.stopped_at is not None:
            self.dismissed.emit(alert.id)
        else:
            self.timed_out.emit(alert.id)

    def _enter_choice(self) -> Choice | None:
        """Enter: the highlighted default, when it can be pressed (none once the app
        stopped)."""
        for decision, button in self.buttons.items():
            if button.isDefault() and button.isEnabled() and button.isVisible():
                return decision
        return None

    def _escape(self) -> None:
        """Escape: "Allow once" (the answer that changes nothing), or the default answer
        when a parental lock is set (the child must not wave the alert away); an alert for
        an app that already stopped just closes."""
        view = self.view
        if view is None:
            return
        if view.alert.stopped_at is not None:
            self._tick.stop()
            self.view = None
            self.hide()
            self.dismissed.emit(view.alert.id)
            return
        choice = self.settings.default_decision if self.settings.parental \
            else Choice.ALLOW_ONCE
        if self.buttons[choice].isEnabled() and self.buttons[choice].isVisible():
            self._answer(choice)

    def _answer(self, decision: Choice) -> None:
        view = self.view
        if view is None:
            return
        self._tick.stop()
        self.view = None
        self.hide()
        self.decided.emit(view.alert.id, decision.value)

