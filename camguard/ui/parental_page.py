"""The settings window's "Parental lock" page: turn the lock on, change its password, turn it
off, and say in plain words what it does.

A password change takes effect at once (it is not one of the settings Save writes): the lock
is its own file (store.parental_lock), and a parent who set it expects it on before the
window closes. The scrypt check (about 50 ms) and the file lock run on the dialog's pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from camguard.core.rules import RuleError
from camguard.core.schedule import Schedule
from camguard.core.text import literal
from camguard.store.parental_lock import LockCheck, LockGuard
from camguard.ui.alert import plain_label
from camguard.ui.settings_pages import run_in_pool

OFF_TEXT = ("The parental lock is off. Anyone using this account can quit camguard, pause "
            "its alerts and unblock the camera or microphone.")
ON_TEXT = ("The parental lock is on. Quitting camguard, pausing alerts, unblocking a device "
           "and changing settings need the password. An alert nobody answers blocks the "
           "device (unless another answer is chosen on the Alerts page).")
SCHEDULES = ("Hours the camera or microphone may be used, one line each; outside them "
             "camguard blocks it, whoever asks, and the child's own rules cannot lift it. "
             "Saved with Save.")
SCHEDULE_HINT = "camera mon-fri 16:00-19:00; sat,sun 10:00-20:00\nmicrophone daily 08:00-20:00"
SERVED = ("camguard's system service decides here, for every account: the schedules in "
          "force are its policy's (schedules = [...] under [settings] in "
          "/etc/camguard/policy.toml; `camguard policy show` lists them).")
NO_SCHEDULE = "No schedule: the camera and microphone may be used at any hour."


SERVICE_OFF = ("camguard's system service is installed but off. On, it watches, records "
               "and enforces for every account on this computer, whether or not this tray "
               "runs (an administrator's password is asked).")
SERVICE_ON = "camguard's system service is on: it watches every account."
TURN_ON = "Turn on the camguard service…"


class SystemService(Protocol):
    """The system service as the page offers it (platform.system_service()): each call may
    block (systemctl, a password dialog), so the page runs them on its pool."""

    def installed(self) -> bool: ...

    def running(self) -> bool: ...

    def turn_on(self) -> tuple[bool, str]: ...


class ParentalPage(QWidget):
    """Shows whether the lock is set and changes it. ``lock_changed(bool)``: now set."""

    lock_changed = Signal(bool)

    def __init__(self, guard: LockGuard, pool: QThreadPool,
                 service: SystemService | None = None) -> None:
        super().__init__()
        self._guard = guard
        self._pool = pool
        self._service = service
        # This tray is the service's client (the settings dialog says so): the service
        # decides every use by its policy's schedules; schedules typed here hold nowhere.
        self.served = False
        self.busy = False
        box = QVBoxLayout(self)
        self.state = plain_label()
        self.state.setWordWrap(True)
        box.addWidget(self.state)
        form = QFormLayout()
        self.current = self._password("The password now")
        self.new = self._password("At least 4 characters")
        self.again = self._password("The same again")
        form.addRow("Current password", self.current)
        form.addRow("New password", self.new)
        form.addRow("New password again", self.again)
        box.addLayout(form)
        row = QHBoxLayout()
        self.set_button = QPushButton()
        self.off_button = QPushButton("Turn the lock off")
        row.addWidget(self.set_button)
        row.addWidget(self.off_button)
        row.addStretch(1)
        box.addLayout(row)
        self.message = plain_label()
        self.message.setWordWrap(True)
        box.addWidget(self.message)
        self._schedules_and_service(box)
        box.addStretch(1)
        self.service_busy = False
        self.look_at_service()
        self.set_button.clicked.connect(lambda _=False: self.set_password())
        self.off_button.clicked.connect(lambda _=False: self.turn_off())
        self.is_set = False
        self.refresh()

    def _schedules_and_service(self, box: QVBoxLayout) -> None:
        schedules = plain_label(SCHEDULES)
        schedules.setWordWrap(True)
        box.addWidget(schedules)
        self.schedules = QPlainTextEdit()
        self.schedules.setPlaceholderText(SCHEDULE_HINT)
        self.schedules.setTabChangesFocus(True)
        self.schedules.setMaximumHeight(90)
        box.addWidget(self.schedules)
        self.in_force = plain_label(NO_SCHEDULE)  # what the saved schedules mean, in words
        self.in_force.setWordWrap(True)
        box.addWidget(self.in_force)
        self.service_state = plain_label()
        self.service_state.setWordWrap(True)
        self.service_state.setVisible(False)
        box.addWidget(self.service_state)
        self.service_button = QPushButton(TURN_ON)
        self.service_button.setVisible(False)
        self.service_button.clicked.connect(lambda _=False: self.turn_service_on())
        box.addWidget(self.service_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.service_result = plain_label()  # what turning it on did, under the button
        self.service_result.setWordWrap(True)
        box.addWidget(self.service_result)

    def look_at_service(self) -> None:
        """Whether the service is installed and on (off the GUI thread): the button shows
        only for an installed service that is off."""
        service = self._service
        if service is None:
            return
        self.service_busy = True

        def shown(state: tuple[bool, bool]) -> None:
            self.service_busy = False
            installed, running = state
            self.service_state.setVisible(installed)
            self.service_state.setText(SERVICE_ON if running else SERVICE_OFF)
            self.service_button.setVisible(installed and not running)

        def failed(exc: BaseException) -> None:
            self.service_busy = False
            self.service_state.setText(f"Could not ask about the service: {exc}")

        run_in_pool(self._pool, self, lambda _say: (service.installed(), service.running()),
                    shown, failed=failed)

    def turn_service_on(self) -> None:
        service = self._service
        if service is None or self.service_busy:
            return
        self.service_busy = True
        self.service_button.setEnabled(False)
        self.service_result.setText("Waiting for an administrator's password…")

        def done(result: tuple[bool, str]) -> None:
            self.service_busy = False
            self.service_button.setEnabled(True)
            self.service_result.setText(literal(result[1], 400))
            self.look_at_service()

        def failed(exc: BaseException) -> None:
            done((False, f"Not turned on: {exc}"))

        run_in_pool(self._pool, self, lambda _say: service.turn_on(), done, failed=failed)

    def show_schedules(self, saved: tuple[str, ...]) -> None:
        """The schedules in force (as saved, or set by a policy)."""
        self.schedules.setPlainText("\n".join(saved))
        lines = []
        for text in saved:
            try:
                lines.append("• " + Schedule.parse(text).describe())
            except RuleError as exc:
                lines.append(f"• not used: {literal(str(exc), 200)}")
        self.in_force.setText(SERVED if self.served else
                              "\n".join(lines) if lines else NO_SCHEDULE)

    def schedule_lines(self) -> tuple[str, ...]:
        """What the editor holds, one schedule a line (checked when saved)."""
        return tuple(line.strip() for line in self.schedules.toPlainText().splitlines()
                     if line.strip())

    @staticmethod
    def _password(hint: str) -> QLineEdit:
        field = QLineEdit()
        field.setEchoMode(QLineEdit.EchoMode.Password)
        field.setPlaceholderText(hint)
        return field

    def refresh(self) -> None:
        self.is_set = self._guard.is_set()
        self.state.setText(ON_TEXT if self.is_set else OFF_TEXT)
        self.current.setEnabled(self.is_set)
        self.off_button.setVisible(self.is_set)
        self.set_button.setText("Change the password" if self.is_set else "Turn the lock on")

    def set_password(self) -> None:
        new, again = self.new.text(), self.again.text()
        if len(new) < 4:
            self.message.setText("Choose a password of at least 4 characters.")
            return
        if new != again:
            self.message.setText("The two new passwords differ; type them again.")
            return
        current = self.current.text() if self.is_set else None
        self._run(lambda: self._guard.set_password(new, current),
                  "The parental lock is on." if not self.is_set else "Password changed.")

    def turn_off(self) -> None:
        current = self.current.text()
        self._run(lambda: self._guard.clear(current), "The parental lock is off.")

    def _run(self, change: Callable[[], LockCheck], done_text: str) -> None:
        if self.busy:
            return
        self.busy = True
        self.message.setText("One moment…")

        def done(answer: LockCheck) -> None:
            self.busy = False
            for field in (self.current, self.new, self.again):
                field.clear()
            self.message.setText(done_text if answer.ok else
                                 f"Not changed: {answer.message or 'the lock refused'}")
            self.refresh()
            if answer.ok:
                self.lock_changed.emit(self.is_set)

        def failed(exc: BaseException) -> None:
            self.busy = False
            self.message.setText(f"Not changed: {exc}")

        run_in_pool(self._pool, self, lambda _say: change(), done, failed=failed)
