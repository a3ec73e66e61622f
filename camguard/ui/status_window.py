"""The status window: live users and the same actions as the tray menu, always reachable.

It is the main window when no tray host exists (QSystemTrayIcon.isSystemTrayAvailable() is
False under bare X servers, some Wayland sessions, kiosks), and it is what "show camguard"
opens otherwise (a tray click, or launching camguard a second time).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from camguard.core.clock import Clock
from camguard.core.decision import Choice
from camguard.core.models import DeviceKind
from camguard.ui.alert import plain_label
from camguard.ui.model import Snapshot, TrayState
from camguard.ui.tray import PAUSES, describe_user, summary_lines

_KEY_ROLE = Qt.ItemDataRole.UserRole


class StatusWindow(QWidget):
    """A small window. Closing it hides it, unless it is the only way to reach camguard
    (no tray): then it is minimised, so a guard never disappears because of a stray click."""

    act_requested = Signal(object, str)
    block_requested = Signal(object)
    unblock_requested = Signal(object)
    pause_requested = Signal(float)
    resume_requested = Signal()
    history_requested = Signal()
    settings_requested = Signal()
    quit_requested = Signal()

    def __init__(self, clock: Clock, *, keep_open: bool = False) -> None:
        super().__init__()
        self._clock = clock
        self.keep_open = keep_open
        self.snapshot = Snapshot(TrayState.IDLE, (), (), frozenset(), None)
        self.setWindowTitle("camguard")
        self.setMinimumWidth(420)
        box = QVBoxLayout(self)
        self.headline = plain_label(bold=True)
        box.addWidget(self.headline)
        self.users = QListWidget()  # item text is plain text: no markup is interpreted
        box.addWidget(self.users, 1)
        row = QHBoxLayout()
        self.user_buttons: dict[Choice, QPushButton] = {}
        for decision, text in ((Choice.KILL, "Kill app"), (Choice.BLOCK, "Block device"),
                               (Choice.ALWAYS_ALLOW, "Always allow")):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, d=decision: self._act(d))
            self.user_buttons[decision] = button
            row.addWidget(button)
        box.addLayout(row)
        self.details = plain_label()
        self.details.setWordWrap(True)
        box.addWidget(self.details)
        self.message_label = plain_label()
        self.message_label.setWordWrap(True)
        box.addWidget(self.message_label)
        self._add_global_buttons(box)
        self.users.currentItemChanged.connect(lambda *_: self._update_buttons())
        self._refresh = QTimer(self)
        self._refresh.setInterval(5_000)
        self._refresh.timeout.connect(self._render)
        self.show_snapshot(self.snapshot)

    def _add_global_buttons(self, box: QVBoxLayout) -> None:
        row = QHBoxLayout()
        self.block_buttons: dict[DeviceKind, QPushButton] = {}
        for kind in (DeviceKind.CAMERA, DeviceKind.MICROPHONE):
            button = QPushButton()
            button.clicked.connect(lambda _=False, k=kind: self._toggle_block(k))
            self.block_buttons[kind] = button
            row.addWidget(button)
        box.addLayout(row)
        row = QHBoxLayout()
        self.pause_buttons = []
        for text, seconds in PAUSES:
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, s=seconds: self.pause_requested.emit(s))
            self.pause_buttons.append(button)
            row.addWidget(button)
        self.resume_button = QPushButton("Resume alerts")
        self.resume_button.clicked.connect(lambda _=False: self.resume_requested.emit())
        row.addWidget(self.resume_button)
        box.addLayout(row)
        row = QHBoxLayout()
        for text, signal in (("History…", self.history_requested),
                             ("Settings…", self.settings_requested),
                             ("Quit camguard", self.quit_requested)):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, s=signal: s.emit())
            row.addWidget(button)
        box.addLayout(row)

    @Slot(object)
    def show_snapshot(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self._render()
        if snap.users:
            self._refresh.start()
        else:
            self._refresh.stop()

    @Slot(str, str)
    def show_message(self, title: str, text: str) -> None:
        self.message_label.setText(f"{title}: {text}")

    @Slot()
    def _render(self) -> None:
        snap = self.snapshot
        now = self._clock.now()
        lines = summary_lines(snap, now)
        self.headline.setText(lines[0])
        self.details.setText("\n".join(lines[1 + len(snap.users):]))
        selected = self._selected_key()
        self.users.clear()
        for user in snap.users:
            item = QListWidgetItem(describe_user(user, now))
            item.setData(_KEY_ROLE, user.key)
            self.users.addItem(item)
            if user.key == selected:
                self.users.setCurrentItem(item)
        if self.users.currentItem() is None and self.users.count():
            self.users.setCurrentRow(0)
        for kind, button in self.block_buttons.items():
            button.setText(f"Unblock {kind.value}" if kind in snap.blocked
                           else f"Block {kind.value}")
        paused = snap.paused_until is not None
        for button in self.pause_buttons:
            button.setVisible(not paused)
        self.resume_button.setVisible(paused)
        self._update_buttons()

    def _selected_key(self) -> object:
        item = self.users.currentItem()
        return None if item is None else item.data(_KEY_ROLE)

    def _update_buttons(self) -> None:
        key = self._selected_key()
        user = next((u for u in self.snapshot.users if u.key == key), None)
        seen = user is not None and user.usage.process is not None
        self.user_buttons[Choice.KILL].setEnabled(seen)
        self.user_buttons[Choice.BLOCK].setEnabled(user is not None)
        self.user_buttons[Choice.ALWAYS_ALLOW].setEnabled(
            seen and user is not None and not user.allowed)

    def _act(self, decision: Choice) -> None:
        key = self._selected_key()
        if key is not None:
            self.act_requested.emit(key, decision.value)

    def _toggle_block(self, kind: DeviceKind) -> None:
        if kind in self.snapshot.blocked:
            self.unblock_requested.emit(kind)
        else:
            self.block_requested.emit(kind)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.keep_open:
            event.ignore()
            self.showMinimized()
            return
        event.accept()
