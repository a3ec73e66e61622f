"""The parental page's schedules over real files: typed, checked and saved with Save behind
the lock, shown in words, locked by a policy, and enforced by the tray's rules judge (the
one decision engine) at a frozen time."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

from pytestqt.qtbot import QtBot

from camguard.core.decision import decided_by
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.core.rules import Verdict
from camguard.store.parental_lock import LockGuard
from camguard.ui.judge import RuleJudge
from camguard.ui.parental_page import NO_SCHEDULE, SERVED
from camguard.ui.settings_dialog import SettingsDialog
from camguard.ui.settings_support import Unlock, lock_unlocker
from tests.gui.test_settings_dialog import NOW, Env, env, make
from tests.gui.test_tray_launch import REPO

__all__ = ["env", "make"]  # fixtures

SCHOOL = "camera mon-fri 16:00-19:00; sat,sun 10:00-20:00"


def usage(kind: DeviceKind = DeviceKind.CAMERA) -> Usage:
    return Usage(Device(kind, "/dev/video0"),
                 ProcessRef(4242, 1.0, "zoom", "/usr/bin/zoom", ("zoom",), "kid"))


def test_schedules_are_saved_behind_the_lock_shown_and_enforced(
        qtbot: QtBot, env: Env, make: Callable[..., SettingsDialog], tmp_path: Path) -> None:
    # NOW is a Friday, 08:00 UTC: outside the camera's hours, inside the microphone's.
    assert dt.datetime.fromtimestamp(NOW, dt.UTC).strftime("%a %H:%M") == "Fri 08:00"
    guard = LockGuard(tmp_path / "lock.json", env.clock, base=0.0)
    guard.set_password("tulip7")
    asked: list[str] = []

    def ask() -> str | None:
        asked.append("asked")
        return "tulip7"

    unlock: Unlock = lock_unlocker(guard, ask)
    d = make(parental=guard, unlock=unlock)
    page = d.parental
    assert page is not None and page.in_force.text() == NO_SCHEDULE
    page.schedules.setPlainText("camera mon-fri 16:00-25:00\n")
    before = env.settings.path.read_bytes()
    assert not d.save()
    assert "Not saved: schedules:" in d.message.text()
    assert env.settings.path.read_bytes() == before  # nothing written
    page.schedules.setPlainText("  Camera mon-fri 16:00-19:00;sat,sun 10:00-20:00 \n\n"
                                "microphone daily 07:00-21:00\n")
    assert d.save() and asked  # the lock's password, once
    saved = json.loads(env.settings.path.read_text())["settings"]["schedules"]
    assert saved == [SCHOOL, "microphone daily 07:00-21:00"]  # as camguard writes them
    assert json.loads(env.settings.path.read_text())["future"] == {"keep": [1, "two"]}
    d.reload()
    assert page.schedule_lines() == tuple(saved)
    assert "camera: only mon-fri 16:00-19:00; sat,sun 10:00-20:00; blocked otherwise" \
        in page.in_force.text()
    d.show()
    d.tabs.setCurrentWidget(page)
    shots = REPO / "docs" / "screenshots" if os.environ.get("CAMGUARD_SCREENSHOTS") == "1" \
        else tmp_path
    d.grab().save(str(shots / "settings-parental-lock.png"))

    # Enforced by the tray's judge, from the same settings file, at the frozen time.
    judge = RuleJudge(env.rules, lambda: env.policy(None), env.clock,
                      settings_path=env.settings.path, tz=dt.UTC)
    cam = judge.decision(usage())
    assert cam.verdict is Verdict.BLOCK_DEVICE
    assert decided_by(cam) == f"rule:schedule: camera outside {SCHOOL[7:]} (policy)"
    assert judge.decision(usage(DeviceKind.MICROPHONE)).verdict is Verdict.ASK
    env.clock.advance(8 * 3600 + 30 * 60)  # Friday 16:30: the camera's hours
    assert judge.decision(usage()).verdict is Verdict.ASK


def test_a_policy_sets_and_locks_the_schedules(
        env: Env, make: Callable[..., SettingsDialog], tmp_path: Path) -> None:
    guard = LockGuard(tmp_path / "lock.json", env.clock, base=0.0)
    status = env.policy('locked = ["schedules"]\n[settings]\n'
                        'schedules = ["all weekdays 08:00-18:00"]\n')
    d = make(parental=guard, policy=status)
    page = d.parental
    assert page is not None and not page.schedules.isEnabled()
    assert "policy" in page.schedules.toolTip()
    assert "all: only mon-fri 08:00-18:00; blocked otherwise" in page.in_force.text()
    bad = env.policy('[settings]\nschedules = ["camera at noon"]\n')
    d = make(parental=guard, policy=bad)
    assert "schedules:" in d.problems.text()  # a bad schedule is said, never half-read


def test_as_the_services_client_the_page_points_to_the_policys_schedules(
        env: Env, make: Callable[..., SettingsDialog], tmp_path: Path) -> None:
    guard = LockGuard(tmp_path / "lock.json", env.clock, base=0.0)
    d = make(parental=guard, served=True)
    page = d.parental
    assert page is not None and not page.schedules.isEnabled()
    assert page.in_force.text() == SERVED and "policy.toml" in page.schedules.toolTip()
