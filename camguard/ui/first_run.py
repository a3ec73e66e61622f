"""The first-run window: what camguard does, what it watches here, how it should answer, start
at login, and (for a child's account) a parental lock. Shown once, at the first start.

Everything it sets is also in Settings later; nothing here is required: "Start" with the
defaults is a working camguard (ask each time, start at login).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from camguard.core.coverage import Coverage
from camguard.core.rules import Mode
from camguard.core.text import literal
from camguard.store.parental_lock import LockGuard
from camguard.store.ui_settings import mark_welcomed
from camguard.ui.alert import plain_label
from camguard.ui.bridge import Worker
from camguard.ui.first_run_gaps import ALL_SEEN, Gap, gaps
from camguard.ui.settings_lists import RulesEditor
from camguard.ui.settings_support import AutostartPort

TITLE = "Welcome to camguard"
# What this computer lets camguard see (the detection's coverage) and whether the
# privileged helper is installed: each may block (a look at PipeWire), so both run off the
# GUI thread.
CoverageFn = Callable[[], "Sequence[Coverage] | None"]  # None: not reported (a service)
HelperFn = Callable[[], "bool | None"]
# Installs the privileged helper from this package through pkexec (an administrator's
# password): (done, a sentence for the person). Blocks for as long as the dialog is open.
InstallFn = Callable[[], "tuple[bool, str]"]
INSTALL_HELPER = "Install the helper…"
INSTALL_WORDS = ("This camguard can install it now: the button asks for an administrator's "
                 "password.")
MODES = ((Mode.ASK, "Ask me which apps may use them (recommended)"),
         (Mode.BLOCK_ALL, "Block every app I have not allowed"),
         (Mode.NOTIFY_ONLY, "Only tell me; never close or block anything"))


class FirstRunWindow(QDialog):
    """``finished_setup(lock_set)``: saved; the tray then reads its settings again."""

    finished_setup = Signal(bool)

    def __init__(self, config_dir: Path, watching: Sequence[str], *,
                 rules: RulesEditor | None = None, autostart: AutostartPort | None = None,
                 lock: LockGuard | None = None, mode_locked: str | None = None,
                 coverage: CoverageFn | None = None, helper: HelperFn | None = None,
                 install_helper: InstallFn | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._dir = config_dir
        self._rules = rules
        self._autostart = autostart
        self._lock = lock
        self._coverage, self._helper, self._install = coverage, helper, install_helper
        self.install_button: QPushButton | None = None
        self.setWindowTitle(TITLE)
        self.setMinimumWidth(560)
        box = QVBoxLayout(self)
        head = plain_label("camguard is watching your camera and microphone", bold=True)
        box.addWidget(head)
        intro = plain_label(
            "The moment any app turns one of them on, camguard names the app beside the tray "
            "icon and lets you allow it, close it, or switch the device off. Every use is "
            "kept in the History window.")
        intro.setWordWrap(True)
        box.addWidget(intro)
        seen = plain_label("On this computer it watches:\n" + "\n".join(
            "• " + literal(line, 200) for line in watching))
        seen.setWordWrap(True)
        box.addWidget(seen)
        box.addWidget(self._gaps_box())
        self._worker: Worker | None = None
        self._look(coverage, helper)
        self.modes = QButtonGroup(self)
        group = QGroupBox("When an app turns the camera or microphone on")
        inner = QVBoxLayout(group)
        for mode, text in MODES:
            button = QRadioButton(text)
            button.setProperty("mode", mode.value)
            button.setChecked(mode is Mode.ASK)
            button.setEnabled(mode_locked is None and rules is not None)
            self.modes.addButton(button)
            inner.addWidget(button)
        if mode_locked is not None:
            inner.addWidget(plain_label(literal(mode_locked, 200)))
        box.addWidget(group)
        self.autostart = QCheckBox("Start camguard when I log in")
        self.autostart.setChecked(autostart is not None)
        self.autostart.setVisible(autostart is not None)
        box.addWidget(self.autostart)
        self._offer_lock = lock is not None and not lock.is_set()
        self.parental, self.password, self.again = self._lock_box()
        box.addWidget(self.parental)
        self.parental.setVisible(self._offer_lock)  # once in the window, not as a window
        self.message = plain_label()
        self.message.setWordWrap(True)
        box.addWidget(self.message)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(lambda _=False: self.finish())
        box.addWidget(self.start_button)

    def _gaps_box(self) -> QGroupBox:
        group = QGroupBox("What camguard cannot see on this computer")
        self._gaps_layout = QVBoxLayout(group)
        self.gap_labels: dict[str, QLabel] = {}
        self._gaps_note = plain_label("Looking…")
        self._gaps_note.setWordWrap(True)
        self._gaps_layout.addWidget(self._gaps_note)
        self.installing = False
        self.install_result = plain_label()  # what the helper's installer said
        self.install_result.setWordWrap(True)
        self._gaps_layout.addWidget(self.install_result)
        return group

    def _look(self, coverage: CoverageFn | None, helper: HelperFn | None) -> None:
        """Finds the gaps off the GUI thread (None for both: nothing to say)."""
        if coverage is None and helper is None:
            self.show_gaps([])
            return
        self.loading = True
        if self._worker is None:
            self._worker = Worker("camguard-first-run", 1, self)
        self._worker.submit(lambda: gaps(coverage() if coverage else None,
                                         helper() if helper else None),
                            self.show_gaps, self._gaps_failed)

    def show_gaps(self, found: Sequence[Gap]) -> None:
        """One line per gap, in plain words, each saying what would fix it; a missing helper
        has its button when this camguard can install it (pkexec asks an administrator's
        password). Called again after that install: the lines are those of the new look."""
        self.loading = False
        for label in self.gap_labels.values():
            self._gaps_layout.removeWidget(label)
            label.deleteLater()
        self.gap_labels.clear()
        self._gaps_note.setText("" if found else ALL_SEEN)
        self._gaps_note.setVisible(not found)
        helper_missing = False
        for gap in found:
            text = gap.text
            if gap.key == "helper" and self._install is not None:
                helper_missing = True
                text += " " + INSTALL_WORDS
            label = plain_label("• " + text)
            label.setWordWrap(True)
            self.gap_labels[gap.key] = label
            self._gaps_layout.addWidget(label)
        if helper_missing and self.install_button is None:
            self.install_button = QPushButton(INSTALL_HELPER)
            self.install_button.clicked.connect(lambda _=False: self.install())
            self._gaps_layout.addWidget(self.install_button)
        if self.install_button is not None:
            self._gaps_layout.removeWidget(self.install_button)  # stays under the lines
            self._gaps_layout.addWidget(self.install_button)
            self._gaps_layout.removeWidget(self.install_result)
            self._gaps_layout.addWidget(self.install_result)
            self.install_button.setVisible(helper_missing)
        self.fit()
        QTimer.singleShot(0, self.fit)  # again once the new labels have their widths

    def fit(self) -> None:
        """Tall enough for every wrapped line at the window's width (lines added after the
        window was shown would otherwise be cut to one line each)."""
        layout = self.layout()
        if layout is None:
            return
        for _round in range(4):  # a taller window can lend a label less than it lacks
            layout.activate()  # the labels get their widths
            short = sum(max(0, label.heightForWidth(label.width()) - label.height())
                        for label in self.gap_labels.values())
            if not short:
                return
            self.resize(self.width(), self.height() + short)

    def install(self) -> bool:
        """Run the helper's installer off the GUI thread (pkexec's password dialog waits
        for the person); False when there is nothing to run."""
        install = self._install
        if install is None or self.install_button is None or self._worker is None:
            return False
        self.installing = True
        self.install_button.setEnabled(False)
        self.install_result.setText("Waiting for an administrator's password…")
        self._worker.submit(install, self._installed, self._install_failed)
        return True

    def _installed(self, result: tuple[bool, str]) -> None:
        done, text = result
        self.installing = False
        self.install_result.setText(literal(text, 400))
        if self.install_button is not None:
            self.install_button.setEnabled(True)
        if done:
            self._look(self._coverage, self._helper)  # the fix applied, seen again

    def _install_failed(self, exc: BaseException) -> None:
        self._installed((False, "The installer could not run: " + literal(str(exc), 300)))

    def _gaps_failed(self, exc: BaseException) -> None:
        self.loading = False
        self._gaps_note.setText("camguard could not check what it sees here: "
                                + literal(str(exc), 300))

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)

    def _lock_box(self) -> tuple[QGroupBox, QLineEdit, QLineEdit]:
        group = QGroupBox("A child uses this account: set a parental lock")
        group.setCheckable(True)
        group.setChecked(False)
        form = QFormLayout(group)
        what = plain_label("Quitting camguard, pausing it and unblocking a device will need "
                           "this password; an alert nobody answers blocks.")
        what.setWordWrap(True)
        form.addRow(what)
        password = self._secret("At least 4 characters")
        again = self._secret("The same again")
        form.addRow("Password", password)
        form.addRow("Again", again)
        return group, password, again

    @staticmethod
    def _secret(hint: str) -> QLineEdit:
        field = QLineEdit()
        field.setEchoMode(QLineEdit.EchoMode.Password)
        field.setPlaceholderText(hint)
        return field

    def chosen_mode(self) -> Mode:
        button = self.modes.checkedButton()
        return Mode(str(button.property("mode"))) if button is not None else Mode.ASK

    def finish(self) -> bool:
        """Save what was chosen (file writes and one scrypt: tens of milliseconds)."""
        want_lock = self._offer_lock and self.parental.isChecked()
        if want_lock:
            if len(self.password.text()) < 4:
                self.message.setText("Choose a password of at least 4 characters, or untick "
                                     "the parental lock.")
                return False
            if self.password.text() != self.again.text():
                self.message.setText("The two passwords differ; type them again.")
                return False
        problems = self._save(want_lock)
        if problems:
            self.message.setText("\n".join(problems))
            return False
        mark_welcomed(self._dir)
        self.finished_setup.emit(self._lock is not None and self._lock.is_set())
        self.accept()
        return True

    def _save(self, want_lock: bool) -> list[str]:
        problems: list[str] = []
        steps: list[tuple[str, Callable[[], object]]] = []
        mode = self.chosen_mode()
        rules = self._rules
        if rules is not None and mode is not Mode.ASK:
            def save_mode() -> None:
                with rules.locked():
                    rules.save(rules.load().rules, mode)
            steps.append(("the mode", save_mode))
        auto = self._autostart
        if auto is not None:
            steps.append(("start at login", lambda: auto.set(self.autostart.isChecked())))
        lock = self._lock
        if lock is not None and want_lock:
            steps.append(("the parental lock", lambda: lock.set_password(self.password.text())))
        for what, step in steps:
            try:
                step()
            except (OSError, ValueError) as exc:
                problems.append(f"Could not save {what}: {literal(str(exc), 300)}")
        return problems
