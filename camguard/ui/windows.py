"""The tray's windows opened on request: the history window (over the user's database, or
the service's history in service mode) and the settings dialog."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from camguard.core.clock import Clock
from camguard.store.allowlist import AllowList
from camguard.store.history import HistoryStore
from camguard.store.ui_settings import UiSettings
from camguard.ui.first_run import FirstRunWindow
from camguard.ui.history_query import HistoryQuery, history_query
from camguard.ui.history_window import HistoryWindow
from camguard.ui.settings_dialog import SettingsDialog
from camguard.ui.settings_support import lock_unlocker, password_prompt
from camguard.ui.tray_options import Say, TrayOptions


class Windows(QObject):
    """Opens the history window and the settings dialog on request (made on first use)."""

    settings_changed = Signal(object)  # UiSettings now in force
    first_run_done = Signal(bool)  # the first-run window saved; a parental lock is set

    def __init__(self, clock: Clock, store: HistoryStore | None, options: TrayOptions,
                 say: Say, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._clock = clock
        self._store = store
        self._options = options
        self._say = say
        self.history: HistoryWindow | None = None
        self.settings: SettingsDialog | None = None
        self.first_run: FirstRunWindow | None = None
        self._retired: list[SettingsDialog] = []

    @Slot()
    def show_history(self) -> None:
        query = history_source(self._options, self._store)
        if query is None:
            self._say("History", "The history database could not be opened (see the log), "
                      "so there is no history to show.")
            return
        if self.history is None:
            self.history = HistoryWindow(query, self._clock,
                                         own_session=self._options.own_session)
        w = self.history
        if w.isVisible():
            w.refresh()
        _raise(w)

    @Slot()
    def show_settings(self) -> None:
        """Raise the open dialog, else open a new one over the files as they are now (the
        managed policy is read again: an administrator may have changed it)."""
        if self.settings is not None and self.settings.isVisible():
            _raise(self.settings)
            return
        if self.settings is not None:
            self._retired.append(self.settings)  # its pool may still finish a self-test
        o = self._options
        unlock = None
        if o.lock is not None:
            unlock = lock_unlocker(o.lock, o.ask_password or password_prompt(None))
        dlg = SettingsDialog(
            o.settings_file, self._clock,
            allowlist=AllowList(self._store.db) if self._store is not None else None,
            rules=o.rule_file, autostart=o.autostart, policy=o.policy(),
            selftest=o.selftest, unlock=unlock,
            parental=o.lock, started_with=o.started_with, service=o.system_service,
            served=o.history is not None)
        dlg.settings_changed.connect(self.settings_changed)
        self.settings = dlg
        self._tidy()
        _raise(dlg)

    @Slot()
    def show_first_run(self) -> None:
        """The first-run window, when this is camguard's first start here."""
        o = self._options
        if o.first_run is None:
            return
        ui = o.ui or UiSettings()
        cams = o.started_with.get("camera_globs", ui.camera_globs)
        mics = o.started_with.get("mic_globs", ui.mic_globs)
        watching = [f"cameras: {', '.join(cams) or 'none'}",
                    "microphones: " + ("the sound server (PulseAudio or PipeWire) and "
                                       if ui.watch_sound_server else "")
                    + (", ".join(mics) or "no device nodes")]
        eff = o.policy()
        mode_locked = None
        if eff.policy.is_locked("mode"):
            mode_locked = f"Chosen by {eff.policy.source}."
        w = FirstRunWindow(o.first_run, watching, rules=o.rule_file, autostart=o.autostart,
                           lock=o.lock, mode_locked=mode_locked, coverage=o.coverage,
                           helper=o.helper_installed, install_helper=o.install_helper)
        w.finished_setup.connect(self.first_run_done)
        self.first_run = w
        _raise(w)

    def _tidy(self) -> None:
        for old in list(self._retired):
            if old.pool.activeThreadCount() == 0:
                self._retired.remove(old)
                old.deleteLater()

    def shutdown(self) -> None:
        """Stop the history query thread and any self-test (when camguard quits)."""
        if self.history is not None:
            self.history.hide()
            self.history.shutdown()
            self.history.deleteLater()
            self.history = None
        for dlg in [*self._retired, *([self.settings] if self.settings else [])]:
            dlg.hide()
            dlg.shutdown()
            dlg.deleteLater()
        self._retired, self.settings = [], None
        if self.first_run is not None:
            self.first_run.hide()
            self.first_run.shutdown()
            self.first_run.deleteLater()
            self.first_run = None


def history_source(options: TrayOptions, store: HistoryStore | None) -> HistoryQuery | None:
    """The history the History window and the main window's timeline read: the service's
    (service mode), else the user's database; None when neither can be read."""
    if options.history is not None:
        return options.history
    return history_query(store) if store is not None else None


def _raise(w: Any) -> None:
    w.showNormal()
    w.raise_()
    w.activateWindow()
