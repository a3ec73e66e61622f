"""The settings window: alerts, devices, allow list, rules, start at login, retention, self-test.

Everything it edits comes in through its constructor (a settings file, the allow list, the
rules file, the autostart entry, the managed policy, the parental lock and the self-test),
so the dialog never opens a store by itself. Settings the managed policy locks are shown
with the value in force, disabled, with a tooltip naming who locked them; while the policy
cannot be read at all, nothing it might lock can be changed (fail closed, like the CLI).
Nothing is written until Save; Save asks for the parental-lock password first when one is
set, then writes the settings file, the rules file, the allow list and the autostart entry,
and emits ``settings_changed`` with the settings now in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace

from PySide6.QtCore import QThreadPool, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from camguard.core.clock import Clock
from camguard.core.text import literal
from camguard.store.parental_lock import LockGuard
from camguard.store.policy import (
    NO_POLICY,
    RULES,
    EffectiveSettings,
    PolicyStatus,
    effective_settings,
    load_user_settings,
)
from camguard.store.rules import RuleFileContents
from camguard.store.ui_settings import (
    MANAGED,
    UiSettings,
    UiSettingsFile,
    answer_default,
    changed_fields,
    check,
    with_values,
)
from camguard.ui.alert import plain_label
from camguard.ui.parental_page import SERVED, ParentalPage, SystemService
from camguard.ui.settings_lists import AllowEditor, AllowPage, RulesEditor, RulesPage
from camguard.ui.settings_pages import (
    DEVICES_NOTE,
    AlertsPage,
    DevicesPage,
    GeneralPage,
    lock,
    run_in_pool,
    select_value,
)
from camguard.ui.settings_support import (
    AUTOSTART,
    AutostartPort,
    SelftestRun,
    Unlock,
)

log = logging.getLogger(__name__)

class SettingsDialog(QDialog):
    settings_changed = Signal(object)  # UiSettings now in force, after a successful save
    selftest_finished = Signal(str)  # the report (or why it could not run)

    def __init__(self, settings_file: UiSettingsFile, clock: Clock, *,
                 allowlist: AllowEditor | None = None, rules: RulesEditor | None = None,
                 autostart: AutostartPort | None = None, policy: PolicyStatus | None = None,
                 selftest: SelftestRun | None = None, unlock: Unlock | None = None,
                 lock_set: Callable[[], bool] | None = None,
                 started_with: Mapping[str, tuple[str, ...]] | None = None,
                 parental: LockGuard | None = None, service: SystemService | None = None,
                 served: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lock_set = lock_set or (parental.is_set if parental is not None
                                      else (lambda: False))
        self._started_with = dict(started_with or {})
        self._file = settings_file
        self._clock = clock
        self._allowlist = allowlist
        self._rules = rules
        self._autostart = autostart
        self._policy = policy or PolicyStatus(NO_POLICY)
        self._selftest = selftest
        self._unlock = unlock
        self._cancel = threading.Event()
        self.selftest_running = False
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.shown_settings = UiSettings()
        self._eff = effective_settings({}, self._policy.policy)
        self._autostart_was = False
        self.setWindowTitle("camguard — settings")
        self.resize(720, 560)
        box = QVBoxLayout(self)
        self.problems = plain_label()
        self.problems.setWordWrap(True)
        box.addWidget(self.problems)
        self.tabs = QTabWidget()
        self.alerts = AlertsPage()
        self.devices = DevicesPage()
        self.allow_page = AllowPage(self.pool)
        self.rules_page = RulesPage(self.pool, clock.now)
        self.general = GeneralPage()
        for page, title in ((self.alerts, "Alerts"), (self.devices, "Devices"),
                            (self.allow_page, "Allow list"), (self.rules_page, "Rules"),
                            (self.general, "General")):
            self.tabs.addTab(page, title)
        self.parental = self._parental_page(parental, service, served)
        box.addWidget(self.tabs, 1)
        self.message = plain_label()
        self.message.setWordWrap(True)
        box.addWidget(self.message)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._save_and_close)
        buttons.rejected.connect(self.reject)
        box.addWidget(buttons)
        self.allow_page.add_button.clicked.connect(lambda _=False: self._choose_program())
        self.rules_page.browse.clicked.connect(lambda _=False: self._choose_rule_path())
        self.general.selftest_button.clicked.connect(lambda _=False: self.run_selftest())
        self.general.selftest_button.setVisible(selftest is not None)
        self.general.selftest_output.setVisible(selftest is not None)
        self.tabs.setTabVisible(2, allowlist is not None)
        self.tabs.setTabVisible(3, rules is not None)
        self.general.autostart.setVisible(autostart is not None)
        self.reload()

    # -- loading -----------------------------------------------------------------------
    def reload(self) -> None:
        """Read everything again and show it (pending edits are dropped)."""
        ui, problems = self._file.load()
        user, more = load_user_settings(self._file.path)
        contents = self._rules.load() if self._rules is not None else RuleFileContents()
        status = self._policy
        self._eff = effective_settings(user, status.policy, contents.rules)
        # Unchosen, the default answer is the safe one under a parental lock (as the tray);
        # what this run was started with on the command line is what is in force.
        started = {n: v for n, v in self._started_with.items()
                   if not self._eff.items[n].locked}
        self.shown_settings = with_values(ui, {**{n: self._eff.value(n) for n in MANAGED},
                                               "alert_default": answer_default(
                                                   self._eff, self._lock_set()),
                                               **started})
        self._show(self.shown_settings)
        if self._allowlist is not None:
            self.allow_page.load(self._allowlist.entries())
        self.rules_page.load(status.policy.rules, contents.rules)
        if self._autostart is not None:
            self._autostart_was = self._autostart.is_enabled()
            self.general.autostart.setChecked(self._autostart_was)
        self._apply_locks()
        lines = [status.error] if status.error else []
        for p in [*problems, *more, *contents.problems, *self._eff.problems]:
            if p not in lines:
                lines.append(p)
        self.problems.setText("\n".join(literal(p, 500) for p in lines))
        self.problems.setVisible(bool(lines))

    def _show(self, s: UiSettings) -> None:
        select_value(self.alerts.decision, s.alert_default)
        self.alerts.countdown.setValue(round(s.countdown))
        select_value(self.alerts.channel, s.notification_channel)
        self.devices.camera_globs.set_values(s.camera_globs)
        self.devices.mic_globs.set_values(s.mic_globs)
        self.devices.watch_sound_server.setChecked(s.watch_sound_server)
        self.alerts.freeze.setChecked(s.freeze_while_asking)
        self.general.retention.setValue(s.retention_days)
        if self.parental is not None:
            self.parental.show_schedules(s.schedules)

    def _parental_page(self, guard: LockGuard | None, service: SystemService | None,
                       served: bool) -> ParentalPage | None:
        if guard is None:
            return None
        page = ParentalPage(guard, self.pool, service)
        page.served = served
        page.lock_changed.connect(self._lock_changed)
        self.tabs.addTab(page, "Parental lock")
        return page

    def _lock_changed(self, on: bool) -> None:
        """The lock went on or off: an unchosen default answer follows it at once."""
        default = answer_default(self._eff, on)
        if default != self.shown_settings.alert_default:
            self.shown_settings = replace(self.shown_settings, alert_default=default)
            select_value(self.alerts.decision, default)
            self.settings_changed.emit(self.shown_settings)

    def lock_reason(self, name: str) -> str | None:
        """Why ``name`` cannot be changed here (None: it can)."""
        status = self._policy
        if status.error:
            return ("The managed policy cannot be read, so nothing it might lock can be "
                    f"changed: {status.error}")
        if name == "schedules" and self.parental is not None and self.parental.served:
            return SERVED
        if name in self._eff.items:
            refusal = self._eff.refusal(name)
            if refusal is None and name in self._started_with:
                option = "--" + name.replace("_globs", "-glob")
                return (f"camguard was started with {option} for this run: that is what it "
                        "watches now. Start it without the option to use this setting.")
            return refusal
        if status.policy.is_locked(name):
            return f"locked by {status.policy.source}; ask your administrator"
        return None

    def _widgets(self) -> dict[str, list[QWidget]]:
        return {
            "alert_default": [self.alerts.decision],
            "countdown": [self.alerts.countdown],
            "notification_channel": [self.alerts.channel],
            "camera_globs": [self.devices.camera_globs],
            "mic_globs": [self.devices.mic_globs],
            "watch_sound_server": [self.devices.watch_sound_server],
            "freeze_while_asking": [self.alerts.freeze],
            "retention_days": [self.general.retention],
            AUTOSTART: [self.general.autostart],
            "schedules": [] if self.parental is None else [self.parental.schedules],
            RULES: [self.rules_page.form_box, self.rules_page.remove_button,
                    self.allow_page.add_button, self.allow_page.remove_button,
                    self.allow_page.kind],
        }

    def _apply_locks(self) -> None:
        for name, widgets in self._widgets().items():
            why = self.lock_reason(name)
            for w in widgets:
                if why is None:
                    w.setEnabled(True)
                    w.setToolTip("")
                else:
                    lock(w, why)
        started = [n for n in ("camera_globs", "mic_globs") if n in self._started_with
                   and not self._eff.items[n].locked]
        self.devices.note.setText(
            (self.lock_reason(started[0]) or "") + "\n" + DEVICES_NOTE if started
            else DEVICES_NOTE)
        why = self.lock_reason(RULES)
        for page in (self.rules_page, self.allow_page):
            page.message.setText("" if why is None else literal(why, 500))

    @property
    def effective(self) -> EffectiveSettings:
        return self._eff

    # -- reading the form --------------------------------------------------------------
    def current_settings(self) -> UiSettings:
        return UiSettings(
            alert_default=str(self.alerts.decision.currentData()),
            countdown=float(self.alerts.countdown.value()),
            notification_channel=str(self.alerts.channel.currentData()),
            retention_days=self.general.retention.value(),
            camera_globs=self.devices.camera_globs.values(),
            mic_globs=self.devices.mic_globs.values(),
            watch_sound_server=self.devices.watch_sound_server.isChecked(),
            schedules=self.shown_settings.schedules if self.parental is None
            else self.parental.schedule_lines(),
            freeze_while_asking=self.alerts.freeze.isChecked())

    # -- saving ------------------------------------------------------------------------
    @Slot()
    def _save_and_close(self) -> None:
        if self.save():
            self.accept()

    def save(self) -> bool:
        """Write every change not locked by the policy; False (and a message) when nothing
        was saved or something failed. The parental lock is asked first, once."""
        if self.allow_page.hashing or self.rules_page.hashing:
            self.message.setText("Still reading a program; save again in a moment.")
            return False
        new = self.current_settings()
        changed = sorted(n for n in changed_fields(self.shown_settings, new)
                         if self.lock_reason(n) is None)
        rules_free = self.lock_reason(RULES) is None
        want_auto = self.general.autostart.isChecked()
        auto = (self._autostart is not None and want_auto != self._autostart_was
                and self.lock_reason(AUTOSTART) is None)
        allow = self._allowlist is not None and self.allow_page.dirty and rules_free
        rules = self._rules is not None and self.rules_page.dirty and rules_free
        if not (changed or auto or allow or rules):
            self.message.setText("Nothing to save.")
            return True
        try:
            values = {n: check(n, getattr(new, n)) for n in changed}
        except ValueError as exc:
            self.message.setText(f"Not saved: {exc}")
            return False
        if self._unlock is not None:
            answer = self._unlock()
            if not answer.ok:
                why = answer.message or "the parental lock refused"
                self.message.setText(f"Not saved: {why}")
                return False
        notes = self._write(values, auto and want_auto, auto, allow, rules)
        if notes is None:
            return False
        self.reload()
        self.message.setText("\n".join(["Saved.", *notes]))
        self.settings_changed.emit(self.shown_settings)
        return True

    def _write(self, values: dict[str, object], autostart_on: bool, autostart: bool,
               allow: bool, rules: bool) -> list[str] | None:
        now = self._clock.now()
        notes: list[str] = []
        done: list[str] = []
        try:
            if values:
                notes += self._file.save(values)
                done.append("settings")
            if rules and self._rules is not None:
                self.rules_page.apply(self._rules, now)
                done.append("rules")
            if allow and self._allowlist is not None:
                self.allow_page.apply(self._allowlist, now)
                done.append("allow list")
            if autostart and self._autostart is not None:
                self._autostart.set(autostart_on)
                done.append("start at login")
        except Exception as exc:  # a full disk, a read-only file, a damaged database
            log.exception("saving the settings failed")
            saved = f" (saved: {', '.join(done)})" if done else ""
            self.message.setText(f"Could not save everything{saved}: "
                                 f"{literal(str(exc) or type(exc).__name__, 300)}")
            return None
        return [literal(n, 500) for n in notes]

    # -- self-test ---------------------------------------------------------------------
    def run_selftest(self) -> bool:
        """Start the injected self-test on a pool thread; False if none or one runs."""
        run = self._selftest
        if run is None or self.selftest_running:
            return False
        self.selftest_running = True
        self._cancel = cancel = threading.Event()
        button, out = self.general.selftest_button, self.general.selftest_output
        button.setEnabled(False)
        button.setText("Self-test running…")
        out.clear()

        def finish(text: str) -> None:
            self.selftest_running = False
            button.setEnabled(True)
            button.setText("Run self-test")
            out.setPlainText(text)
            self.selftest_finished.emit(text)

        def failed(exc: BaseException) -> None:
            finish(f"The self-test could not run: {literal(str(exc) or type(exc).__name__)}")

        run_in_pool(self.pool, self, lambda say: run(say, cancel),
                    lambda report: finish(str(report)), failed=failed,
                    progress=out.appendPlainText)
        return True

    # -- file choosers (real UI only; tests call add_program / set the fields) ----------
    def _choose_program(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Allow a program", "/usr/bin")
        if path:
            self.allow_page.add_program(path)

    def _choose_rule_path(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a program", "/usr/bin")
        if path:
            self.rules_page.value.setText(path)

    # -- closing -----------------------------------------------------------------------
    def done(self, result: int) -> None:
        self._cancel.set()  # a running self-test stops (and switches devices back on)
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._cancel.set()
        super().closeEvent(event)

    def shutdown(self, timeout_ms: int = 120_000) -> bool:
        """Cancel the self-test and wait for pool threads (when camguard quits)."""
        self._cancel.set()
        return self.pool.waitForDone(timeout_ms)
