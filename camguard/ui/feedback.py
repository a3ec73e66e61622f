"""Where camguard's feedback goes ("Zoom was closed", "Could not block the camera"): one
place at a time, never on top of the alert popup.

While the popup is on screen, feedback waits: a notification daemon draws its bubbles in a
corner of its own choosing (dunst's default is the top right, where the popup also sits
under a top panel), and a bubble landing on the popup takes the click meant for one of its
buttons. Once the popup is gone, what waited is shown, the latest last. The desktop
notification is the first choice (it carries the sensor's icon, and a failure looks like
one); without a daemon the tray icon's own balloon says it; the status window shows the
latest for a while either way.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Slot

from camguard.ui.alert import AlertPopup
from camguard.ui.model import Feedback
from camguard.ui.notifications import DesktopNotifier
from camguard.ui.status_window import StatusWindow
from camguard.ui.tray import TrayIcon

# A burst (a rule ending ten apps) is summed up rather than replayed bubble by bubble.
MAX_HELD = 3


class FeedbackRouter(QObject):
    def __init__(self, popup: AlertPopup, notifier: DesktopNotifier | None,
                 tray: TrayIcon | None, status: StatusWindow,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._popup = popup
        self._notifier = notifier
        self._tray = tray
        self._status = status
        self.held: list[Feedback] = []
        # The popup hides before the next alert in the queue shows: look once that is done.
        self._due = QTimer(self)
        self._due.setSingleShot(True)
        self._due.setInterval(0)
        self._due.timeout.connect(self.flush)
        popup.hidden.connect(self._due.start)
        if notifier is not None:
            notifier.feedback_fallback.connect(self._balloon)

    @Slot(object)
    def show(self, fb: Feedback) -> None:
        self._status.show_feedback(fb)
        if self._popup.isVisible():
            self.held.append(fb)
            return
        self._send(fb)

    @Slot()
    def flush(self) -> None:
        if self._popup.isVisible():
            return  # the next alert is up: keep waiting
        held, self.held = self.held, []
        if len(held) > MAX_HELD:
            skipped = len(held) - MAX_HELD + 1
            held = held[-(MAX_HELD - 1):]
            held.insert(0, Feedback("camguard", f"{skipped} more results: see History.",
                                    held[0].level))
        for fb in held:
            self._send(fb)

    def _send(self, fb: Feedback) -> None:
        if self._notifier is not None:
            self._notifier.say(fb)  # falls back to _balloon without a daemon
        else:
            self._balloon(fb)

    @Slot(object)
    def _balloon(self, fb: Feedback) -> None:
        if self._tray is not None:
            self._tray.show_feedback(fb)
