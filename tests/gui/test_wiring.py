"""The running tray's windows, settings, retention and parental lock, wired as `camguard tray`
wires them: a real Monitor over stand-in nodes held by real child processes, and real
settings.json, SQLite history, lock.json and policy files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QInputDialog
from pytestqt.qtbot import QtBot

from camguard.cli.tray import startup_settings
from camguard.core.clock import FrozenClock
from camguard.core.decision import Choice, DecidedBy
from camguard.core.models import Device, DeviceKind, EventType, ProcessRef, Usage, UsageEvent
from camguard.platform.clock import SystemClock
from camguard.store.parental_lock import LockGuard
from camguard.store.policy import ManagedPolicy, TomlPolicyReader
from camguard.store.ui_settings import NOTIFICATION, UiSettings, UiSettingsFile
from camguard.ui.ports import AlertSettings
from camguard.ui.retention import RETENTION_MS
from camguard.ui.shell import PROBLEMS, settings_saved
from camguard.ui.tray_options import TrayOptions, tray_alert_settings
from tests.conftest import IS_ROOT, Holder
from tests.gui.wiring_rig import QUIET, Dirs, Live, dirs, launch, lives, node_mode

__all__ = ["dirs", "lives"]  # fixtures


def messages(live: Live) -> list[str]:
    said: list[str] = []
    live.controller.message.connect(lambda title, text: said.append(f"{title}: {text}"))
    return said


def test_history_and_settings_windows_follow_the_tray(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    live = launch(qtbot, dirs, holders, TrayOptions())
    lives.append(live)
    c = live.controller
    first = live.hold()
    qtbot.waitUntil(live.parts.popup.isVisible, timeout=20_000)
    qtbot.mouseClick(live.parts.popup.buttons[Choice.ALLOW_ONCE], Qt.MouseButton.LeftButton)
    assert live.session(first.pid).decided_by == DecidedBy.POPUP

    # History… from the status window: the window opens and lists that session.
    live.parts.status.history_requested.emit()
    windows = live.parts.windows
    assert windows is not None and windows.history is not None
    history = windows.history
    qtbot.waitUntil(lambda: any(r.pid == first.pid for r in history.visible_records()),
                    timeout=10_000)
    assert history.isVisible()
    [rec] = [r for r in history.visible_records() if r.pid == first.pid]
    assert rec.decision == Choice.ALLOW_ONCE

    # Settings…: switch to notifications only with a short countdown, and save.
    live.parts.status.settings_requested.emit()
    dlg = windows.settings
    assert dlg is not None and dlg.isVisible()
    dlg.alerts.countdown.setValue(5)
    dlg.alerts.channel.setCurrentIndex(dlg.alerts.channel.findData(NOTIFICATION))
    assert dlg.save()
    assert (c.settings.countdown, c.settings.popup, c.settings.notifications) == (5, False, True)
    assert live.parts.popup.settings == c.settings
    saved = json.loads((dirs.config / "settings.json").read_text())
    assert saved["ui"] == {"alert_countdown": 5.0, "notification_channel": NOTIFICATION}

    # The next alert raises no popup; the countdown still answers it with the default.
    second = live.hold()
    router = live.parts.router
    assert router is not None
    qtbot.waitUntil(lambda: router.view is not None, timeout=20_000)
    assert not live.parts.popup.isVisible() and router.timer.isActive()
    rec = live.session(second.pid, timeout=30)
    assert (rec.decision, rec.decided_by) == (Choice.ALLOW_ONCE, DecidedBy.TIMEOUT)
    assert not live.parts.popup.isVisible()

    # Opening settings again while open raises the same dialog; quitting shuts both down.
    live.parts.status.settings_requested.emit()
    assert windows.settings is dlg
    live.stop()
    assert windows.history is None and windows.settings is None


def test_startup_settings_and_their_problems_show_in_the_tray(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live],
        caplog: pytest.LogCaptureFixture) -> None:
    settings_file = UiSettingsFile(dirs.config / "settings.json")
    settings_file.path.write_text(json.dumps({"ui": {"alert_countdown": "soon",
                                                     "notification_channel": "popup"},
                                              "settings": {"alert_default": "allow"}}))
    policy_path = dirs.root / "policy.toml"
    policy_path.write_text("[settings]\nalert_default = 'kill'\nlocked = ['alert_default']\n")
    policy = ManagedPolicy(TomlPolicyReader(policy_path))
    ui, problems = startup_settings(settings_file, policy.load())
    assert ui.alert_default == "kill" and ui.countdown == 30.0  # the policy wins; bad -> default
    assert any("alert_countdown" in p for p in problems)
    settings = tray_alert_settings(ui)
    assert (settings.default_decision, settings.popup, settings.notifications) == (
        Choice.KILL, True, False)

    live = launch(qtbot, dirs, holders, TrayOptions(
        settings_file=settings_file, ui=ui, problems=tuple(problems), policy=policy.load),
        settings=settings)
    lives.append(live)
    [shown] = [d for d in live.controller.snapshot().degraded if d.source == PROBLEMS]
    assert "alert_countdown" in shown.reason
    assert "degraded: settings:" in live.parts.status.details.text()
    assert "alert_countdown" in live.parts.status.details.text()
    assert "alert_countdown" in caplog.text

    # A policy that no longer parses is loud at start-up; fixing the file clears the line.
    policy_path.write_text("this is = = not toml")
    ui2, problems2 = startup_settings(settings_file, policy.load())
    assert problems2[0].startswith("MANAGED POLICY NOT APPLIED")
    assert ui2.alert_default == "kill"  # the last good policy stays in force
    policy_path.write_text("")
    settings_file.path.write_text(json.dumps({"ui": {"alert_countdown": 20}}))
    settings_saved(live.parts, UiSettings(countdown=20))
    qtbot.waitUntil(lambda: not live.controller.snapshot().degraded, timeout=10_000)
    assert live.controller.settings.countdown == 20


def test_retention_purges_old_sessions_at_start_and_daily(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    from camguard.store.history import HistoryStore

    now = time.time()
    store = HistoryStore(dirs.history, SystemClock(), hash_exes=False)
    ids = {}
    for label, start in (("old", now - 10 * 86400), ("recent", now - 3600)):
        usage = Usage(Device(DeviceKind.CAMERA, f"/dev/{label}"),
                      ProcessRef(4242, start, label, "/usr/bin/true"))
        ids[label] = store.record_event(UsageEvent(EventType.STARTED, usage, start))
        store.record_event(UsageEvent(EventType.STOPPED, usage, start + 60, start))
    store.close()

    live = launch(qtbot, dirs, holders, TrayOptions(ui=UiSettings(retention_days=7)))
    lives.append(live)
    retention = live.parts.retention
    assert retention is not None
    qtbot.waitUntil(lambda: live.store.get(ids["old"]) is None, timeout=10_000)
    assert live.store.get(ids["recent"]) is not None
    assert retention.timer.isActive() and retention.timer.interval() == RETENTION_MS

    # Saving 0 (keep forever) stops purging; saving a shorter time purges at once.
    settings_saved(live.parts, UiSettings(retention_days=0))
    assert retention.days == 0
    with qtbot.waitSignal(retention.purged, timeout=10_000):
        settings_saved(live.parts, UiSettings(retention_days=1))  # nothing that old left
    assert live.store.get(ids["recent"]) is not None


def test_the_parental_lock_guards_quit_pause_and_unblock(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    clock = FrozenClock(1_800_000_000.0)
    guard = LockGuard(dirs.config / "lock.json", clock)
    assert guard.set_password("s3cret").ok
    answers: list[str | None] = []
    asked: list[int] = []

    def ask() -> str | None:
        asked.append(1)
        return answers.pop(0)

    live = launch(qtbot, dirs, holders, TrayOptions(lock=guard, ask_password=ask))
    lives.append(live)
    c, status = live.controller, live.parts.status
    said = messages(live)
    quits: list[int] = []
    # Not the real quit: QApplication.exit() outside exec() would end every later event loop.
    c.quit_requested.disconnect()
    c.quit_requested.connect(lambda: quits.append(1))

    answers[:] = ["wrong"]
    status.quit_requested.emit()
    assert not quits and said[-1] == "Parental lock: Quit camguard: wrong password; try " \
        "again in 1 s"
    # Within the back-off nothing is asked, not even the right password is tried.
    status.quit_requested.emit()
    assert not quits and len(asked) == 1 and "too many wrong passwords" in said[-1]
    clock.advance(2)
    answers[:] = [None]
    status.pause_requested.emit(900.0)
    assert not c.paused and said[-1] == "Parental lock: Pause alerts: no password given"
    answers[:] = ["s3cret"]
    status.pause_requested.emit(900.0)
    assert c.paused
    answers[:] = ["s3cret"]
    status.quit_requested.emit()
    assert quits == [1]
    assert json.loads((dirs.config / "lock.json").read_text())["failures"] == 0

    if not IS_ROOT:
        return
    node = live.node()
    c.block_kind(DeviceKind.CAMERA)
    qtbot.waitUntil(lambda: DeviceKind.CAMERA in c.snapshot().blocked, timeout=20_000)
    assert node_mode(node) == 0
    answers[:] = ["nope"]
    status.unblock_requested.emit(DeviceKind.CAMERA)
    live.settle()
    assert DeviceKind.CAMERA in c.snapshot().blocked and node_mode(node) == 0
    clock.advance(5)
    answers[:] = ["s3cret"]
    status.unblock_requested.emit(DeviceKind.CAMERA)
    qtbot.waitUntil(lambda: DeviceKind.CAMERA not in c.snapshot().blocked, timeout=20_000)
    assert node_mode(node) != 0


def test_the_lock_asks_in_a_masked_input_dialog(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    guard = LockGuard(dirs.config / "lock.json", SystemClock())
    assert guard.set_password("open sesame").ok
    live = launch(qtbot, dirs, holders, TrayOptions(lock=guard))  # the real prompt
    lives.append(live)
    seen: list[str] = []

    def answer() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets()
                   if isinstance(w, QInputDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(20, answer)
            return
        [dlg] = dialogs
        seen.append(dlg.labelText())
        assert dlg.textEchoMode() == dlg.textEchoMode().Password
        dlg.setTextValue("open sesame")
        dlg.accept()

    QTimer.singleShot(20, answer)
    live.parts.status.pause_requested.emit(60.0)
    assert seen == ["Parental lock password:"] and live.controller.paused


def test_settings_window_saves_behind_the_lock(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    guard = LockGuard(dirs.config / "lock.json", SystemClock())
    assert guard.set_password("pw").ok
    answers = ["bad"]
    live = launch(qtbot, dirs, holders, TrayOptions(lock=guard,
                                                    ask_password=lambda: answers.pop(0)))
    lives.append(live)
    live.controller.request_settings()
    windows = live.parts.windows
    assert windows is not None and windows.settings is not None
    dlg = windows.settings
    dlg.alerts.countdown.setValue(45)
    assert not dlg.save() and "wrong password" in dlg.message.text()
    assert live.controller.settings.countdown == QUIET.countdown
    assert not Path(dirs.config / "settings.json").exists()


def test_alert_settings_follow_the_notification_channel() -> None:
    # One surface: an older camguard's "popup+notification" is read as the popup alone.
    for channel, popup, note in (("popup", True, False), ("popup+notification", True, False),
                                 ("notification", False, True)):
        s = tray_alert_settings(UiSettings(notification_channel=channel),
                                AlertSettings(stopped_linger=3))
        assert (s.popup, s.notifications, s.stopped_linger) == (popup, note, 3)
