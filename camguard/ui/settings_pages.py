"""The settings window's pages: alerts, devices, allow list, rules and general (widgets only).

Each page holds widgets and the user's pending edits; the dialog (settings_dialog.py) loads
values into them, locks what the policy locks, and saves. Every text that came from a file
or a process (paths, rule labels) is shown through ``literal()`` in plain-text widgets.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from camguard.core.rules import Duration, MatchBy
from camguard.core.text import literal
from camguard.store.ui_settings import (
    CHANNELS,
    MAX_COUNTDOWN,
    MAX_RETENTION_DAYS,
    MIN_COUNTDOWN,
    NOTIFICATION,
    POPUP,
)
from camguard.ui.alert import plain_label
from camguard.ui.history_model import rich_tooltip

log = logging.getLogger(__name__)

DECISIONS = (("Allow once", "allow"), ("Kill the app", "kill"), ("Block the device", "block"))
CHANNEL_NAMES = {POPUP: "camguard's popup, beside the tray icon",
                 NOTIFICATION: "A desktop notification"}
KINDS = (("Camera and microphone", ""), ("Camera", "camera"), ("Microphone", "microphone"))
MATCHES = (("This program (path and SHA-256)", MatchBy.EXE.value),
           ("This script, whichever interpreter runs it (path and SHA-256)",
            MatchBy.SCRIPT.value),
           ("Any program at this path (or under it, ending in /)", MatchBy.PATH.value),
           ("Processes with this name (weakest)", MatchBy.NAME.value),
           ("Any app", MatchBy.ANY.value))
DEVICES_NOTE = "Device changes apply the next time camguard starts."
# Only durable rules are written to the rules file (see core.rules.Duration.durable).
DURATIONS = (Duration.ALWAYS.value, Duration.MIN15.value, Duration.HOUR.value)


# -- running blocking work off the GUI thread -----------------------------------------------
class _Relay(QObject):
    """Lives on the GUI thread; signals emitted on a pool thread arrive there queued."""

    progress = Signal(str)
    finished = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[Callable[[str], None]], Any], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        def say(line: str) -> None:
            with contextlib.suppress(RuntimeError):  # the window is gone
                self._relay.progress.emit(line)

        try:
            outcome: tuple[bool, Any] = (True, self._fn(say))
        except Exception as exc:
            log.exception("background task failed")
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):
            self._relay.finished.emit(outcome)


def run_in_pool(pool: QThreadPool, parent: QObject,
                fn: Callable[[Callable[[str], None]], Any], done: Callable[[Any], None], *,
                failed: Callable[[BaseException], None],
                progress: Callable[[str], None] | None = None) -> None:
    """Run ``fn(progress)`` on ``pool``; ``done``/``failed``/``progress`` run on the GUI
    thread (``parent``'s)."""
    relay = _Relay(parent)

    def finished(outcome: tuple[bool, Any]) -> None:
        relay.deleteLater()
        ok, value = outcome
        (done if ok else failed)(value)

    relay.finished.connect(finished)
    if progress is not None:
        relay.progress.connect(progress)
    pool.start(_Job(fn, relay))


def lock(widget: QWidget, why: str) -> None:
    widget.setEnabled(False)
    widget.setToolTip(rich_tooltip(why))


def plain_item(text: str, tooltip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)  # the default delegate paints item text as plain text
    if tooltip:
        item.setToolTip(rich_tooltip(tooltip))
    return item


def make_table(headers: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setWordWrap(False)
    table.verticalHeader().hide()
    table.horizontalHeader().setStretchLastSection(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    return table


def combo(choices: tuple[tuple[str, str], ...]) -> QComboBox:
    box = QComboBox()
    for text, value in choices:
        box.addItem(text, value)
    return box


def select_value(box: QComboBox, value: str) -> None:
    index = box.findData(value)
    if index >= 0:
        box.setCurrentIndex(index)


# -- pages ----------------------------------------------------------------------------------
class AlertsPage(QWidget):
    def __init__(self) -> None:
        super().__init__()
        form = QFormLayout(self)
        self.decision = combo(DECISIONS)
        form.addRow("When nobody answers an alert", self.decision)
        self.countdown = QSpinBox()
        self.countdown.setRange(int(MIN_COUNTDOWN), int(MAX_COUNTDOWN))
        self.countdown.setSuffix(" s")
        form.addRow("Answer an alert within", self.countdown)
        self.channel = combo(tuple((CHANNEL_NAMES[c], c) for c in CHANNELS))
        form.addRow("Show alerts as", self.channel)
        self.freeze = QCheckBox("Pause the app until I answer")
        self.freeze.setToolTip("An app camguard asks about is stopped while the alert is "
                               "open, so it cannot record anything yet. It continues when "
                               "you allow it (or after two minutes at most).")
        form.addRow(self.freeze)


class GlobListEditor(QWidget):
    """An editable list of absolute device path patterns."""

    def __init__(self, placeholder: str) -> None:
        super().__init__()
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()  # item text is plain text
        box.addWidget(self.list)
        row = QHBoxLayout()
        self.entry = QLineEdit()
        self.entry.setPlaceholderText(placeholder)
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        for w in (self.entry, self.add_button, self.remove_button):
            row.addWidget(w)
        box.addLayout(row)
        self.error = plain_label()
        box.addWidget(self.error)
        self.add_button.clicked.connect(lambda _=False: self.add(self.entry.text()))
        self.entry.returnPressed.connect(lambda: self.add(self.entry.text()))
        self.remove_button.clicked.connect(lambda _=False: self.remove_selected())

    def set_values(self, values: tuple[str, ...]) -> None:
        self.list.clear()
        self.list.addItems(list(values))

    def values(self) -> tuple[str, ...]:
        return tuple(self.list.item(i).text() for i in range(self.list.count()))

    def add(self, text: str) -> bool:
        pattern = text.strip()
        if not pattern.startswith("/") or "\x00" in pattern:
            self.error.setText(f"Not an absolute path pattern: {literal(pattern, 80)}")
            return False
        self.error.clear()
        if pattern not in self.values():
            self.list.addItem(pattern)
        self.entry.clear()
        return True

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.list.takeItem(row)


class DevicesPage(QWidget):
    def __init__(self) -> None:
        super().__init__()
        form = QFormLayout(self)
        self.camera_globs = GlobListEditor("/dev/video*")
        form.addRow("Camera device nodes", self.camera_globs)
        self.mic_globs = GlobListEditor("/dev/snd/pcmC*D*c")
        form.addRow("Raw microphone nodes", self.mic_globs)
        self.watch_sound_server = QCheckBox(
            "Watch the sound server (PulseAudio, PipeWire) for recording apps")
        form.addRow(self.watch_sound_server)
        self.note = plain_label(DEVICES_NOTE)
        self.note.setWordWrap(True)
        form.addRow(self.note)


class RetentionEditor(QWidget):
    """How long the history is kept: a "forever" box, else a number of days. ``value()`` is
    the setting (0: forever), as the spin box that said "Keep forever" at 0 had it."""

    def __init__(self, days: int = 90) -> None:
        super().__init__()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.forever = QCheckBox("Keep forever")
        self.days = QSpinBox()
        self.days.setRange(1, MAX_RETENTION_DAYS)
        self.days.setValue(days)
        self.days.setPrefix("or keep ")
        self.days.setSuffix(" days")
        row.addWidget(self.forever)
        row.addWidget(self.days, 1)
        self.forever.toggled.connect(lambda on: self.days.setEnabled(not on))

    def value(self) -> int:
        return 0 if self.forever.isChecked() else self.days.value()

    def setValue(self, days: int) -> None:  # the QSpinBox name it replaces
        self.forever.setChecked(days == 0)
        self.days.setEnabled(days != 0)
        if days:
            self.days.setValue(days)


class GeneralPage(QWidget):
    def __init__(self) -> None:
        super().__init__()
        box = QVBoxLayout(self)
        form = QFormLayout()
        self.autostart = QCheckBox("Start camguard when I log in")
        form.addRow(self.autostart)
        self.retention = RetentionEditor()
        form.addRow("History", self.retention)
        box.addLayout(form)
        self.selftest_button = QPushButton("Run self-test")
        self.selftest_button.setToolTip(rich_tooltip(
            "Uses each camera and microphone for real, checks camguard saw it, switches them "
            "off and on again, and reports what it found (up to about a minute)."))
        box.addWidget(self.selftest_button)
        self.selftest_output = QPlainTextEdit()  # plain text: nothing in it is interpreted
        self.selftest_output.setReadOnly(True)
        self.selftest_output.setPlaceholderText("The self-test report appears here.")
        box.addWidget(self.selftest_output, 1)
