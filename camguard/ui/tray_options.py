"""What the tray is given beyond detection and the kill switch (:class:`TrayOptions`): the
settings and rules files, the lock, the self-test, the event log, and in service mode the
service's kill switch and history. ``camguard tray`` fills it from app/; the shell only
reads it (no part of the tray opens a store by itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from camguard.core.coverage import Coverage
from camguard.core.freeze import FreezeWhileAsking
from camguard.core.models import MonitorEvent
from camguard.store.eventlog import EventLog
from camguard.store.history_record import SessionRecord
from camguard.store.parental_lock import LockGuard
from camguard.store.policy import NO_POLICY, PolicyStatus
from camguard.store.rules import RuleFile
from camguard.store.ui_settings import UiSettings, UiSettingsFile
from camguard.ui.history_query import HistoryQuery
from camguard.ui.parental_page import SystemService
from camguard.ui.ports import ActionsPort, AlertSettings, HistoryPort, RulesPort
from camguard.ui.settings_support import AutostartPort, SelftestRun, alert_settings

Say = Callable[[str, str], None]  # (title, message) shown to the person


def _no_policy() -> PolicyStatus:
    return PolicyStatus(NO_POLICY)


@dataclass
class TrayOptions:
    """What the tray needs beyond detection and the kill switch. ``camguard tray`` passes
    every part; tests and benchmarks pass what they exercise (the rest stays off)."""

    settings_file: UiSettingsFile = field(default_factory=UiSettingsFile)
    ui: UiSettings | None = None  # in force at start-up (retention; None: the defaults)
    problems: tuple[str, ...] = ()  # met while reading settings and policy: shown in the tray
    # Settings this run was started with on the command line (--camera-glob, --mic-glob):
    # the settings window shows them in force, and why they cannot be changed there.
    started_with: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The first start: the config folder the first-run window marks once it is done
    # (None: camguard was set up before; the window is not shown).
    first_run: Path | None = None
    policy: Callable[[], PolicyStatus] = _no_policy  # read again each time settings open
    rule_file: RuleFile | None = None  # the settings window's rules (app/tray.rule_file)
    autostart: AutostartPort | None = None
    selftest: SelftestRun | None = None
    lock: LockGuard | None = None  # the parental lock (None: quit, pause, unblock are free)
    ask_password: Callable[[], str | None] | None = None  # None: a masked input dialog
    # Service mode: whether the service's own lock is set (unblock then sends the password).
    service_lock: Callable[[], bool] | None = None
    events: EventLog | None = None
    rules: RulesPort | None = None
    actions: ActionsPort | None = None  # instead of the local kill switch (service mode)
    # Service mode: the service's history is the history. The History window shows it and
    # the tray records no second copy of any session or decision in the user's database.
    history: HistoryQuery | None = None
    # Service mode: where the person's answers to alerts are recorded (the service's
    # session of that usage; app/service_feed.ServiceDecisions).
    decisions: HistoryPort | None = None
    # Once this process is the running tray (not a second launch), before the first event;
    # and after the last one (the event log's camguard.started and camguard.stopped).
    on_start: Callable[[], None] | None = None
    on_stop: Callable[[], None] | None = None
    # Alerts paused (True) or resumed (False), on the io lane (service mode: the service
    # freezes while asking only while a tray answers; app/service_asking.py).
    on_paused: Callable[[bool], None] | None = None
    # More monitor sinks, added after the history and before the UI (e.g. the guard that
    # ends this account's openers of a blocked camera when camguard has no privileges).
    sinks: list[Callable[[MonitorEvent], None]] = field(default_factory=list)
    # What each sensor's sources can see now (the main window's coverage panel; called off
    # the GUI thread; it answers None when a service does not report it). None: not known.
    coverage: Callable[[], list[Coverage] | None] | None = None
    # Whether the privileged helper is installed (the first-run window says what is missing
    # without it; called off the GUI thread). None: not asked (no helper on this platform).
    helper_installed: Callable[[], bool | None] | None = None
    # Installs the helper through pkexec (platform.privileged_helper_installer): the
    # first-run window's button. None: not offered.
    install_helper: Callable[[], tuple[bool, str]] | None = None
    # camguard's system service, for the parental page's "Turn on the camguard service…"
    # (platform.system_service()). None: not offered.
    system_service: SystemService | None = None
    # Whether a history session is camguard's own check (the self-test): the History window
    # hides those unless asked to show them. None: no session can be told apart.
    own_session: Callable[[SessionRecord], bool] | None = None
    # ``camguard status --json`` answered by this running tray (cli/tray_status.py): the
    # status document of its monitor now (app/guard_local.status_document; called off the
    # GUI thread). None: the command looks for itself.
    status_doc: Callable[[], Mapping[str, Any]] | None = None
    # Freeze while asking (app/freeze.TrayFreeze.open): called once this process is the
    # running tray (it continues what an earlier run left paused). None: never pauses.
    freeze: Callable[[], FreezeWhileAsking] | None = None


def tray_alert_settings(ui: UiSettings, base: AlertSettings | None = None) -> AlertSettings:
    """The controller's settings from the UI settings, with the notification channel's
    popup part (settings_dialog.alert_settings predates it)."""
    return replace(alert_settings(ui, base), popup=ui.popup)
