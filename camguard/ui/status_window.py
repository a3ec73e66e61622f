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
from camguard.ui.model import Feedback, Snapshot, TrayState
from camguard.ui.tray import PANIC, PAUSES, describe_user, summary_lines

_KEY_ROLE = Qt.ItemDataRole.UserRole
MESSAGE_MS = 20_000


def empty_text(snap: Snapshot) -> str:
    """What the user list says when nothing is using a device."""
    if snap.blocked:
        return ("Nothing is using your camera or microphone.\n"
                "Blocked devices stay off until you unblock them below.")
    return ("Nothing is using your camera or microphone.\n"
            "camguard will tell you the moment an app turns one on.")


class StatusWindow(QWidget):
    """A small window. Closing it hides it, unless it is the only way to reach camguard
    (no tray): then it is minimised, so a guard never disappears because of a stray click."""

    act_requested = Signal(object, str)
    block_requested = Signal(object)
    block_for_requested = Signal(object, float)
    panic_requested = Signal()
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
        # Idle: a sentence where the list would be, not an empty white box.
        self.empty = plain_label()
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setMinimumHeight(96)
        box.addWidget(self.empty, 1)
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
        # The last action's result is news, not state: it goes after a while.
        self._message_clear = QTimer(self)
        self._message_clear.setSingleShot(True)
        self._message_clear.setInterval(MESSAGE_MS)
        self._message_clear.timeout.connect(self.message_label.clear)
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
        self.panic_button = QPushButton("Panic: both off now")
        self.panic_button.setToolTip(PANIC)
        self.panic_button.clicked.connect(lambda _=False: self.panic_requested.emit())
        row.addWidget(self.panic_button)
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
        self.message_label.setText(f"{title}: {text}" if text else title)
        self._message_clear.start()

    @Slot(object)
    def show_feedback(self, fb: Feedback) -> None:
        self.message_label.setText(f"{fb.title}. {fb.text}" if fb.text else fb.title)
        self._message_clear.start()

    @Slot()
    def _render(self) -> None:
        snap = self.snapshot
        now = self._clock.now()
        lines = summary_lines(snap, now)
        self.headline.setText(lines[0])
        self.details.setText("\n".join(lines[1 + len(snap.users):]))
        self.details.setVisible(len(lines) > 1 + len(snap.users))
        self.users.setVisible(bool(snap.users))
        self.empty.setVisible(not snap.users)
        self.empty.setText(empty_text(snap))
        for button in self.user_buttons.values():
            button.setVisible(bool(snap.users))
        selected = self._selected_key()
        self.users.clear()
        for user in snap.users:
            item = QListWidgetItem(describe_user(user, now, snap.blocked))
            item.setData(_KEY_ROLE, user.key)
            self.users.addItem(item)
            if user.key == selected:
                self.users.setCurrentItem(item)
        if self.users.currentItem() is None and self.users.count():
            self.users.setCurrentRow(0)
        for kind, button in self.block_buttons.items():
            button.setText(f"Unblock {kind.value}" if kind in snap.blocked
                           else f"Block {kind.value}")
        self.panic_button.setEnabled(not {DeviceKind.CAMERA, DeviceKind.MICROPHONE}
                                     <= snap.blocked)
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
