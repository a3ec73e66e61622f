"""``camguard tray`` (and plain ``camguard``): the tray application, put together.

Alone it watches with its own Monitor, decides each usage by the rules, keeps the event log
and runs the hook. When a camguard service answers (the default socket, or ``--socket``) it
is the service's client instead: the service watches, decides and acts, and the tray shows
its events and sends kill, block and unblock to it.

Qt is imported only inside the command (through camguard.ui), so every other subcommand
starts without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from camguard import __version__
from camguard.app import EventOutputs, build_detection, tray_outputs
from camguard.app import tray as tray_parts
from camguard.app.freeze import TrayFreeze
from camguard.app.guard_service import ServiceGuard
from camguard.app.settings import managed_policy, user_effective
from camguard.cli import remote
from camguard.cli.common import CliError, detection_settings, policy_reader, settings_path
from camguard.core.settings import DetectionSettings
from camguard.core.text import literal
from camguard.platform.clock import SystemClock
from camguard.store.policy import EffectiveSettings, ManagedPolicy, PolicyStatus
from camguard.store.ui_settings import UiSettings, UiSettingsFile, settings_in_force, welcomed

if TYPE_CHECKING:
    from camguard.app.detection import Detection
    from camguard.monitor import Monitor
    from camguard.selftest.report import SelftestReport
    from camguard.ui.ports import AlertSettings
    from camguard.ui.tray_options import TrayOptions

log = logging.getLogger(__name__)

Selftest = Callable[[Callable[[str], None], threading.Event], str]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tray", parents=[common],
                       help="the tray icon with alerts and the kill switch (the default)")
    p.add_argument("--answer-alert", action="store_true",
                   help="hand the running tray's alert popup the keyboard (Enter, Esc, "
                        "Alt+A/W/K/B), e.g. from a desktop keyboard shortcut")
    p.set_defaults(func=cmd_tray)


def answer_alert() -> int:
    """``camguard tray --answer-alert``: tell the running tray, start nothing."""
    from camguard.ui.single_instance import answer_running_tray

    if not answer_running_tray():
        raise CliError("no camguard tray is running for this account")
    return 0


def cmd_tray(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("QT_QPA_PLATFORM")):
        # Qt would abort the process with a fatal error; say it in one line instead.
        raise CliError("no graphical session (DISPLAY and WAYLAND_DISPLAY are unset); "
                       "`camguard watch` works in a terminal")
    if getattr(args, "answer_alert", False):
        return answer_alert()
    try:
        from camguard.ui.shell import run_tray
        from camguard.ui.tray_options import tray_alert_settings
    except ImportError as exc:
        raise CliError(f"the tray needs PySide6: pip install 'camguard[gui]' ({exc})") from None
    policy = managed_policy(policy_reader(args), report=False)
    status = policy.load()  # its error and problems: printed by detection_settings below
    policy.report = True  # the tray's later loads log theirs
    ui_file = UiSettingsFile(settings_path(args))
    ui, problems = startup_settings(ui_file, status,
                                    parental=tray_parts.parental_lock().is_set())
    start = TrayStart(detection_settings(args, status), ui_file, ui, problems, policy, status,
                      [sys.argv[0] if sys.argv else "camguard"], started_with(args))
    guard = remote.guard(args)
    if not isinstance(guard, ServiceGuard):
        return _standalone(args, start)
    from camguard.app.service_feed import (
        ServiceActions,
        ServiceDecisions,
        ServiceFeed,
        ServiceVerdicts,
        service_coverage,
        service_history,
    )

    log.info("a camguard service answers at %s: the tray is its client", guard.client.path)
    service = ServiceActions(guard)
    options = tray_options(start)
    options.actions = service
    options.service_lock = service.lock_is_set
    options.history = service_history(guard)  # the one history; the tray keeps no copy
    options.coverage = service_coverage(guard)  # what the service can see (main window)
    options.decisions = ServiceDecisions(guard)  # answers to alerts, recorded there
    # The service enforces this account's rules on its processes: sent on every connect
    # and every save in the settings window (never read by root from this account's files).
    rules = tray_parts.service_rule_file(guard)
    options.rule_file = rules
    # The service decides each usage and acts; the tray waits for its decision and asks
    # the person only when the service says "ask" (never acting on a rule a second time).
    verdicts = ServiceVerdicts()
    options.rules = verdicts
    clock = SystemClock()
    from camguard.app.own_activity import OwnActivity, OwnActivityFilter
    from camguard.app.service_asking import ServiceAsking

    # The service freezes an app while asking only while this tray answers (not paused).
    asking = ServiceAsking(guard)
    options.on_paused = asking.paused
    feed = ServiceFeed(guard, clock, on_connect=rules.send, verdicts=verdicts,
                       answers=asking.answers)
    freeze = TrayFreeze(eager=ui.freeze_while_asking)  # this account's own apps
    options.freeze = freeze.open
    try:
        return run_tray(OwnActivityFilter(feed, OwnActivity()), clock, argv=start.argv,
                        settings=tray_alert_settings(ui, alert_defaults(start)), options=options,
                        open_store=lambda: tray_parts.open_history(clock))  # allow list
    finally:
        freeze.close()


@dataclass
class TrayStart:
    """What ``camguard tray`` read before building anything."""

    settings: DetectionSettings
    ui_file: UiSettingsFile
    ui: UiSettings
    problems: list[str]
    policy: ManagedPolicy
    status: PolicyStatus
    argv: list[str]
    # --camera-glob / --mic-glob given for this run (the settings window shows them).
    started_with: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _status_doc(monitor: Monitor, detection: Detection) -> dict[str, Any]:
    """``camguard status --json`` as this running tray answers it (cli/tray_status.py):
    one look's document, from the monitor's state (it saw what a look cannot)."""
    from camguard.app.guard_local import status_document
    from camguard.app.live_status import with_since

    return status_document(with_since(monitor.state), detection.coverage())


def alert_defaults(start: TrayStart) -> AlertSettings:
    """The alerts' defaults, with how long a probe-storming app's open must last before it
    is asked about: the detection's probe threshold (core/probes.py)."""
    from camguard.ui.ports import AlertSettings

    return AlertSettings(storm_wait=start.settings.probe_threshold)


def started_with(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    given = {"camera_globs": getattr(args, "camera_glob", None),
             "mic_globs": getattr(args, "mic_glob", None)}
    return {name: tuple(value) for name, value in given.items() if value}


def startup_settings(ui_file: UiSettingsFile, status: PolicyStatus, *,
                     parental: bool = False) -> tuple[UiSettings, list[str]]:
    """The UI settings in force (the policy's locked values win) and every problem met:
    a policy that cannot be read comes first. ``parental``: a parental lock is set, so an
    unanswered alert blocks unless someone chose otherwise."""
    ui, problems = settings_in_force(ui_file, status.policy, parental=parental)
    if status.error:
        problems.insert(0, status.error)
    return ui, problems


def tray_options(start: TrayStart) -> TrayOptions:
    """The parts every tray has: the settings window's files, the lock and the self-test."""
    from camguard.platform import (
        current,
        privileged_helper_installed,
        privileged_helper_installer,
        system_service,
    )
    from camguard.platform.null import NullAutostart
    from camguard.ui.tray_options import TrayOptions

    entry = current().autostart()
    # The settings window hides a choice it cannot offer (None), rather than fail on it.
    autostart = None if isinstance(entry, NullAutostart) else entry
    return TrayOptions(settings_file=start.ui_file, ui=start.ui,
                       problems=tuple(start.problems), policy=start.policy.load,
                       started_with=dict(start.started_with),
                       first_run=None if welcomed(start.ui_file.path.parent)
                       else start.ui_file.path.parent,
                       rule_file=tray_parts.rule_file(), autostart=autostart,
                       selftest=selftest_runner(start.settings),
                       lock=tray_parts.parental_lock(), own_session=tray_parts.own_sessions(),
                       helper_installed=privileged_helper_installed,
                       install_helper=privileged_helper_installer(),
                       system_service=system_service())


def _standalone(args: argparse.Namespace, start: TrayStart) -> int:
    from camguard.app.own_activity import OwnActivity, OwnActivityFilter
    from camguard.platform import origin_of
    from camguard.platform.clock import local_zone
    from camguard.ui.judge import RuleJudge
    from camguard.ui.shell import run_tray
    from camguard.ui.tray_options import tray_alert_settings

    clock = SystemClock()
    eff = user_effective(start.ui_file.path, start.status)
    outputs = event_outputs(args, eff, clock)
    start.problems += outputs.problems
    options = tray_options(start)
    options.events = outputs.log
    rules = options.rule_file or tray_parts.rule_file()
    options.rules = RuleJudge(rules, start.policy.load, clock,
                              settings_path=start.ui_file.path, tz=local_zone(),
                              events=outputs.log, origin_of=origin_of)
    options.on_start = lambda: _started(outputs, start.status)
    options.on_stop = outputs.stop
    mic = mic_control()
    guard = None
    freeze = TrayFreeze(eager=start.ui.freeze_while_asking)
    options.freeze = freeze.open
    try:
        killer, blocks = kill_switch(start.settings, mic)
        detection = build_detection(start.settings)
        monitor = detection.monitor()
        options.coverage = detection.coverage  # the main window's coverage panel
        options.status_doc = lambda: _status_doc(monitor, detection)  # `status --json`
        if killer is not None and blocks is not None:
            guard = tray_parts.user_guard(blocks, killer.kill, clock)
            monitor.add_sink(guard)  # a block holds for camguard's own processes too
        return run_tray(OwnActivityFilter(monitor, OwnActivity()), clock, killer=killer,
                        blocks=blocks, argv=start.argv,
                        settings=tray_alert_settings(start.ui, alert_defaults(start)),
                        options=options,
                        open_store=lambda: tray_parts.open_history(clock))
    finally:
        freeze.close()  # before anything else: nothing stays paused
        if guard is not None:
            guard.close()
        if mic is not None:
            mic.close()  # mutes stay on the server; the block's record can undo them


def _started(outputs: EventOutputs, status: PolicyStatus) -> None:
    outputs.start(__version__)
    if status.error or status.policy.source:
        outputs.log.policy_status(status)


def event_outputs(args: argparse.Namespace, eff: EffectiveSettings, clock: SystemClock
                  ) -> EventOutputs:
    """The event log and hook as set (``--events-file`` unless the policy locks it); their
    problems are said on stderr too, for a tray started from a terminal."""
    outputs = tray_outputs(getattr(args, "events_file", None), eff, clock)
    for problem in outputs.problems:
        print(f"camguard: warning: {literal(problem, 500)}", file=sys.stderr)
    return outputs


mic_control = tray_parts.mic_control
kill_switch = tray_parts.kill_switch


# -- the self-test from the settings window -------------------------------------------------
def selftest_runner(settings: DetectionSettings) -> Selftest:
    """``run(progress, cancel) -> report text`` for the settings window (a pool thread; up to
    about a minute). The kill switch is tested with a BlockManager of its own, as
    ``camguard selftest`` does."""

    def run(progress: Callable[[str], None], cancel: threading.Event) -> str:
        from camguard.selftest.runner import run_selftest

        blocks = None
        notes: list[str] = []
        if sys.platform.startswith("linux"):
            from camguard.app.killswitch import build_block_manager

            blocks = build_block_manager(settings)
            notes = list(blocks.expire_due().problems)
        report = run_selftest(settings, blocks=blocks, cancel=cancel, progress=progress)
        return selftest_text(report, notes)

    return run


def selftest_text(report: SelftestReport, notes: list[str] | None = None) -> str:
    """The report as ``camguard selftest`` prints it."""
    lines = [f"warning: {literal(n, 500)}" for n in notes or []]
    for c in report.snapshot():
        where = f" {literal(c.device, 200)}" if c.device else ""
        lines.append(f"{c.status.value.upper():<13} {c.name}{where}: {c.detail}")
    total = report.summary()
    lines.append(f"selftest: {total['passed']} passed, {total['failed']} failed, "
                 f"{total['not_provable']} not provable ({total['seconds']:.1f} s)")
    return "\n".join(lines)
