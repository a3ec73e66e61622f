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

from PySide6.QtCore import QElapsedTimer, QRect, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFont, QGuiApplication
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
from camguard.core.models import UNSEEN_PROCESS_NOTE, DeviceKind
from camguard.core.text import literal
from camguard.ui.assets import app_icon
from camguard.ui.model import AlertView
from camguard.ui.ports import AlertSettings

log = logging.getLogger(__name__)
# The popup's title for each kind of device ("Camera turned on").
KIND_TITLES = {DeviceKind.CAMERA: "Camera", DeviceKind.MICROPHONE: "Microphone",
               DeviceKind.SCREEN: "Screen capture", DeviceKind.LOCATION: "Location"}
# Kinds with no device to switch off: Kill app is the way to stop them.
NO_DEVICE_KINDS = frozenset({DeviceKind.SCREEN, DeviceKind.LOCATION})

WINDOW_TITLE = "camguard alert"
WIDTH = 440
MARGIN = 12
# Character limits for process-controlled text: enough to recognise, never a wall of text.
LIMITS = {"name": 48, "exe": 110, "user": 32, "parent": 32, "device": 80, "cmdline": 160,
          "note": 160}


def plain_label(text: str = "", *, bold: bool = False) -> QLabel:
    """A label that shows its text literally: no markup, no links, clipped not widened."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setText(text)
    if bold:
        font = QFont(label.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        label.setFont(font)
    return label


class AlertPopup(QWidget):
    """Shows the controller's current alert; emits the user's answer.

    ``decided(alert_id, decision)`` for a button, ``timed_out(alert_id)`` when the countdown
    runs out (the controller applies the default), ``dismissed(alert_id)`` when an alert for
    an app that already stopped has been shown for ``stopped_linger`` seconds.
    """

    decided = Signal(int, str)
    timed_out = Signal(int)
    dismissed = Signal(int)

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
        self._tick = QTimer(self)
        self._tick.setInterval(250)
        self._tick.timeout.connect(self._on_tick)
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
        self.name_label = plain_label(bold=True)
        titles.addWidget(self.title_label)
        titles.addWidget(self.name_label)
        head.addLayout(titles, 1)
        self.position_label = plain_label()
        self.position_label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        head.addWidget(self.position_label, 0, Qt.AlignmentFlag.AlignTop)
        box.addLayout(head)
        self.exe_label = plain_label()
        self.process_label = plain_label()  # pid and user
        self.parents_label = plain_label()
        self.cmdline_label = plain_label()
        self.device_label = plain_label()
        self.time_label = plain_label()
        self.note_label = plain_label()
        self.status_label = plain_label()
        for label in (self.exe_label, self.process_label, self.parents_label,
                      self.cmdline_label, self.device_label, self.time_label, self.note_label,
                      self.status_label):
            box.addWidget(label)
        row = QHBoxLayout()
        self.buttons: dict[Choice, QPushButton] = {}
        for decision, text in ((Choice.ALLOW_ONCE, "Allow once"),
                               (Choice.ALWAYS_ALLOW, "Always allow"),
                               (Choice.KILL, "Kill app"),
                               (Choice.BLOCK, "Block device")):
            button = QPushButton(text)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setAutoDefault(False)
            button.clicked.connect(lambda _=False, d=decision: self._answer(d))
            self.buttons[decision] = button
            row.addWidget(button)
        box.addLayout(row)

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
            self.view = None
            self.hide()
            return
        same = self.view is not None and self.view.alert.id == view.alert.id
        was_stopped = same and self.view is not None and self.view.alert.stopped_at is not None
        self.view = view
        self._fill(view)
        if not same:
            self._start_countdown(self.settings.countdown)
        if view.alert.stopped_at is not None and not was_stopped:
            self._start_countdown(self.settings.stopped_linger)
        self._on_tick()
        if not self.isVisible():
            self.adjustSize()
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

    def _fill(self, view: AlertView) -> None:
        alert = view.alert
        usage = alert.usage
        device = usage.device
        kind = KIND_TITLES.get(device.kind, device.kind.value.capitalize())
        self.title_label.setText(f"{kind} turned on")
        self.position_label.setText(f"{view.position} of {view.total}" if view.total > 1
                                    else "")
        self.buttons[Choice.BLOCK].setText(f"Block {device.kind.value}")
        self.buttons[Choice.BLOCK].setVisible(device.kind not in NO_DEVICE_KINDS)
        p = usage.process
        self.icon_label.setPixmap(app_icon(p).pixmap(48, 48))
        if p is None:
            self.name_label.setText(UNSEEN_PROCESS_NOTE)
            self.exe_label.setText("")
            self.process_label.setText("run camguard with more privileges to name it")
            self.parents_label.setText("")
            self.cmdline_label.setText("")
        else:
            self.name_label.setText(literal(p.name or "?", LIMITS["name"]))
            self.exe_label.setText(literal(p.exe or "(executable unknown)", LIMITS["exe"]))
            user = literal(p.user, LIMITS["user"]) if p.user else "?"
            self.process_label.setText(f"pid {p.pid}, user {user}")
            chain = " ← ".join(literal(n, LIMITS["parent"]) for n in p.parents[:6])
            self.parents_label.setText(f"started by {chain}" if chain else "")
            self.cmdline_label.setText(literal(" ".join(p.cmdline), LIMITS["cmdline"]))
        name = literal(device.name, LIMITS["device"]) if device.name else ""
        where = literal(device.path or device.id, LIMITS["device"])
        self.device_label.setText(f"{name} ({where})" if name else where)
        self.time_label.setText("since " + time.strftime("%H:%M:%S", time.localtime(alert.at)))
        self.note_label.setText(literal(usage.note, LIMITS["note"]) if usage.note else "")
        self.note_label.setVisible(bool(usage.note))
        stopped = alert.stopped_at is not None
        # Nothing to kill once an app has stopped; nothing to kill or allow that is unseen.
        self.buttons[Choice.KILL].setEnabled(p is not None and not stopped)
        self.buttons[Choice.ALWAYS_ALLOW].setEnabled(p is not None)

    def _place(self) -> None:
        """Bottom-right of the screen, or top-right when the tray sits at the top."""
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        tray = self._anchor() if self._anchor is not None else None
        x = area.right() - self.width() - MARGIN
        if tray is not None and tray.isValid() and tray.center().y() < area.center().y():
            y = area.top() + MARGIN
        else:
            y = area.bottom() - self.height() - MARGIN
        self.move(max(area.left(), x), max(area.top(), y))

    # -- countdown ---------------------------------------------------------------------
    def _start_countdown(self, seconds: float) -> None:
        self._clock.start()
        self._deadline_ms = max(0, int(seconds * 1000))
        self._tick.start()

    def remaining(self) -> float:
        return max(0.0, (self._deadline_ms - self._clock.elapsed()) / 1000)

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
            default = self.buttons[self.settings.default_decision].text()
            self.status_label.setText(f"{default} in {math.ceil(left)} s")
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

    def _answer(self, decision: Choice) -> None:
        view = self.view
        if view is None:
            return
        self._tick.stop()
        self.view = None
        self.hide()
        self.decided.emit(view.alert.id, decision.value)
