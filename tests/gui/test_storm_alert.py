"""A probe-storming app's opens (core/probes.py, docs/probes.md): announced at once, decided
by the rules at once, and asked about only if they last ``storm_wait`` seconds. Real
processes holding real stand-in nodes, the real controller, popup and history."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from camguard.core.decision import Choice
from camguard.core.models import EventType, UsageEvent
from camguard.core.rules import AppMatch, MatchBy, make_rule
from camguard.platform.clock import SystemClock
from camguard.store.policy import ManagedPolicy, TomlPolicyReader
from camguard.store.rules import RuleFile
from camguard.ui.judge import RuleJudge
from camguard.ui.ports import AlertSettings
from tests.gui.conftest import Rig


def storm_start(rig: Rig, usage: object, at: float) -> UsageEvent:
    ev = UsageEvent(EventType.STARTED, usage, at, storm=True)  # type: ignore[arg-type]
    rig.feed(ev)
    return ev


@pytest.mark.parametrize("alert_settings", [
    AlertSettings(countdown=600, stopped_linger=600, notifications=False, storm_wait=0.8)])
def test_a_storming_apps_short_open_is_never_asked_about_and_one_that_lasts_is(
        qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    short, short_use = rig.holder()
    long, long_use = rig.holder()
    now = time.time()
    storm_start(rig, short_use, now)
    storm_start(rig, long_use, now)
    # Announced at once: the tray shows both uses, and no popup asks yet.
    users = {u.usage.process.pid for u in rig.controller.snapshot().users
             if u.usage.process is not None}
    assert users == {short.pid, long.pid}
    rig.settle()
    assert rig.controller.pending_alerts() == () and not rig.popup.isVisible()
    # The short one closes under the wait: a probe, history only.
    rig.feed(replace(UsageEvent(EventType.STOPPED, short_use, now + 0.1, now), probe=True))
    # The one still open when the wait is over is asked about. Its timer was set after the
    # short one's, for the same moment, so the short one's has run by then.
    qtbot.waitUntil(lambda: rig.shown_pid() == long.pid, timeout=10_000)
    [alert] = rig.controller.pending_alerts()
    assert alert.usage.process is not None and alert.usage.process.pid == long.pid
    assert time.time() - now >= 0.8
    assert rig.popup.why_label.text() == ("Asking again: It probed the camera again and "
                                          "again; this time it kept it open for 0.8 s")
    rig.popup.grab().save(str(tmp_path / "alert-after-storm-wait.png"))
    rig.settle()
    assert rig.session(short_use).end_reason == "probe"


@pytest.mark.parametrize("alert_settings", [
    AlertSettings(countdown=600, stopped_linger=600, notifications=False, storm_wait=600)])
def test_a_rule_acts_on_a_storming_apps_open_at_once(qtbot: QtBot, rig: Rig,
                                                     tmp_path: Path) -> None:
    """The wait is for the question only: a kill rule ends the app at once, although a
    storming app's open would be asked about only after ten minutes."""
    rules = RuleFile(tmp_path / "rules.json")
    rules.save([make_rule("kill", app=AppMatch(MatchBy.PATH, os.path.realpath(sys.executable)),
                          kind="camera", label="no prober", created_at=time.time())])
    (tmp_path / "policy.toml").write_text("")
    managed = ManagedPolicy(TomlPolicyReader(tmp_path / "policy.toml"))
    rig.controller._rules = RuleJudge(rules, managed.load, SystemClock(),
                                      settings_path=tmp_path / "settings.json")
    h, usage = rig.holder()
    storm_start(rig, usage, time.time())
    # Ended by the rule (the GUI thread runs the check's answer), not after the wait.
    qtbot.waitUntil(lambda: h.proc.poll() is not None, timeout=20_000)
    rig.settle()
    rec = rig.session(usage)
    assert (rec.decision, rec.decided_by) == (Choice.KILL, "rule:no prober")
    assert rig.controller.pending_alerts() == () and not rig.popup.isVisible()
