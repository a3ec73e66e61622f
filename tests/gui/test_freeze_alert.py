"""Freeze while asking in the running tray (issue 16), wired as `camguard tray` wires it
(app/freeze.TrayFreeze through the façade, the controller, the popup, the history): a real
child opening a stand-in camera node is stopped (/proc/PID/stat state T) while its alert is
pending, and continued on Allow, ended on Kill or on the countdown's default; a rule's
"freeze" verdict pauses it with the setting off; the popup says so."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from camguard.app import build_detection
from camguard.app.freeze import TrayFreeze
from camguard.app.service_feed import ServiceVerdicts
from camguard.core.decision import Choice, DecidedBy
from camguard.core.models import DeviceKind
from camguard.core.rules import AppMatch, MatchBy, make_rule
from camguard.core.settings import DetectionSettings
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock, local_zone
from camguard.platform.linux.freeze import state_of
from camguard.store.policy import NO_POLICY, PolicyStatus
from camguard.store.rules import RuleFile
from camguard.ui.alert_freeze import PAUSED_LINE
from camguard.ui.judge import RuleJudge
from camguard.ui.ports import AlertSettings
from camguard.ui.tray_options import TrayOptions
from tests.audio import parecord
from tests.conftest import Holder
from tests.gui.wiring_rig import Dirs, Live, dirs, launch, lives
from tests.realenv import SoundServer

__all__ = ["dirs", "lives"]  # fixtures

FREEZING = AlertSettings(countdown=600, stopped_linger=600, notifications=False, freeze=True)


@pytest.fixture
def freeze(dirs: Dirs) -> Iterator[TrayFreeze]:
    made = TrayFreeze(dirs.state / "frozen.json", eager=True)
    yield made
    made.close()


@dataclass
class Rig:
    qtbot: QtBot
    dirs: Dirs
    holders: list[Holder]
    lives: list[Live]
    freeze: TrayFreeze

    def tray(self, settings: AlertSettings = FREEZING, options: TrayOptions | None = None
             ) -> Live:
        """The tray with freeze while asking wired as cli/tray.py wires it."""
        o = options or TrayOptions()
        o.freeze = self.freeze.open
        live = launch(self.qtbot, self.dirs, self.holders, o, settings=settings)
        self.lives.append(live)
        return live


@pytest.fixture
def rig(qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live],
        freeze: TrayFreeze) -> Rig:
    return Rig(qtbot, dirs, holders, lives, freeze)


def paused_alert(qtbot: QtBot, live: Live) -> Holder:
    """A real child opens a camera: its alert is up and it is stopped."""
    h = live.hold()
    qtbot.waitUntil(live.parts.popup.isVisible, timeout=20_000)
    qtbot.waitUntil(lambda: state_of(h.pid) == "T", timeout=10_000)
    [alert] = live.controller.pending_alerts()
    assert alert.paused and alert.usage.process is not None
    assert alert.usage.process.pid == h.pid
    return h


def test_paused_while_asked_and_continued_on_allow(qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    live = rig.tray()
    h = paused_alert(qtbot, live)
    popup = live.parts.popup
    assert popup.why_label.isVisible()
    assert popup.why_label.text() == PAUSED_LINE
    popup.grab().save(str(tmp_path / "alert-paused.png"))
    if os.environ.get("CAMGUARD_SCREENSHOTS") == "1":
        popup.grab().save(str(Path(__file__).resolve().parents[2] / "docs" / "screenshots"
                              / "alert-paused.png"))
    assert rig.freeze.journal.exists()  # recorded before the signal
    qtbot.mouseClick(popup.buttons[Choice.ALLOW_ONCE], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: state_of(h.pid) not in ("T", None), timeout=10_000)
    assert h.proc.poll() is None
    h.close()  # it runs again: it answers
    rec = live.session(h.pid)
    assert (rec.decision, rec.decided_by) == (Choice.ALLOW_ONCE, f"{DecidedBy.POPUP} (frozen)")
    assert not rig.freeze.journal.exists()


def test_at_the_limit_it_is_let_go_and_the_popup_says_so(qtbot: QtBot, dirs: Dirs,
                                                          holders: list[Holder],
                                                          lives: list[Live],
                                                          tmp_path: Path) -> None:
    """The watchdog continues a frozen app at the freezer's limit (fail-open) while the
    alert's countdown runs on: the popup stops saying "paused" and says it was let go, at
    the deadline the freezer gave (a short limit here; MAX_FREEZE, 120 s, in use)."""
    short = TrayFreeze(dirs.state / "frozen.json", eager=True, limit=3.0)
    try:
        rig = Rig(qtbot, dirs, holders, lives, short)
        live = rig.tray()
        h = paused_alert(qtbot, live)
        [alert] = live.controller.pending_alerts()
        assert alert.paused_until is not None
        assert live.parts.popup.why_label.text() == PAUSED_LINE
        # The watchdog (another process) continues it at the limit...
        qtbot.waitUntil(lambda: state_of(h.pid) not in ("T", None), timeout=20_000)
        # ...and the popup, still up, says so in words at that deadline.
        qtbot.waitUntil(lambda: live.parts.popup.why_label.text() != PAUSED_LINE,
                        timeout=10_000)
        assert live.parts.popup.isVisible()
        assert live.parts.popup.why_label.text() == (
            "It was let go after 3 seconds; it may be using the camera now")
        live.parts.popup.grab().save(str(tmp_path / "alert-let-go.png"))
        if os.environ.get("CAMGUARD_SCREENSHOTS_DIR"):
            live.parts.popup.grab().save(str(Path(os.environ["CAMGUARD_SCREENSHOTS_DIR"])
                                             / "alert-let-go.png"))
        assert h.proc.poll() is None
        h.close()  # it runs: it answers
    finally:
        short.close()


def test_kill_ends_the_paused_app(qtbot: QtBot, rig: Rig) -> None:
    live = rig.tray()
    h = paused_alert(qtbot, live)
    qtbot.mouseClick(live.parts.popup.buttons[Choice.KILL], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: h.proc.poll() is not None, timeout=20_000)
    rec = live.session(h.pid)
    assert (rec.decision, rec.decided_by) == (Choice.KILL, f"{DecidedBy.POPUP} (frozen)")


def test_the_countdown_default_releases_it(qtbot: QtBot, rig: Rig) -> None:
    """Nobody answers: the default (kill, here) applies to the paused app."""
    settings = AlertSettings(countdown=1.0, stopped_linger=600, notifications=False,
                             freeze=True, default_decision=Choice.KILL)
    live = rig.tray(settings)
    h = live.hold()
    qtbot.waitUntil(lambda: h.proc.poll() is not None, timeout=20_000)
    rec = live.session(h.pid)
    assert (rec.decision, rec.decided_by) == (Choice.KILL, f"{DecidedBy.TIMEOUT} (frozen)")


def test_block_continues_it_once_the_block_is_in_force(qtbot: QtBot, rig: Rig) -> None:
    live = rig.tray()
    h = paused_alert(qtbot, live)
    qtbot.mouseClick(live.parts.popup.buttons[Choice.BLOCK], Qt.MouseButton.LeftButton)
    # The block ends the camera's users (as root the real block; without it the block
    # fails and the app is continued all the same): never left stopped.
    qtbot.waitUntil(lambda: h.proc.poll() is not None or state_of(h.pid) != "T",
                    timeout=20_000)
    live.settle()
    assert rig.freeze.open().frozen() == []


def test_setting_off_leaves_it_running(qtbot: QtBot, rig: Rig) -> None:
    live = rig.tray(AlertSettings(countdown=600, stopped_linger=600, notifications=False))
    h = live.hold()
    qtbot.waitUntil(live.parts.popup.isVisible, timeout=20_000)
    live.settle()
    [alert] = live.controller.pending_alerts()
    assert not alert.paused and state_of(h.pid) != "T"
    assert not live.parts.popup.why_label.isVisible()


def test_a_freeze_rule_pauses_it_with_the_setting_off(qtbot: QtBot, rig: Rig) -> None:
    clock = SystemClock()
    rules = RuleFile(rig.dirs.config / "rules.json")
    rules.save([make_rule("freeze", app=AppMatch(MatchBy.PATH, os.path.realpath(
        sys.executable)), kind="camera", label="pause-python", created_at=clock.now())])
    judge = RuleJudge(rules, lambda: PolicyStatus(NO_POLICY), clock,
                      settings_path=rig.dirs.config / "settings.json", tz=local_zone())
    live = rig.tray(AlertSettings(countdown=600, stopped_linger=600, notifications=False),
                    TrayOptions(rules=judge, rule_file=rules))
    h = paused_alert(qtbot, live)
    qtbot.mouseClick(live.parts.popup.buttons[Choice.ALLOW_ONCE], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: state_of(h.pid) not in ("T", None), timeout=10_000)


def test_in_service_mode_the_services_pause_is_shown_not_repeated(
        qtbot: QtBot, rig: Rig) -> None:
    """The service paused the app (its decision event says so): the alert says it is
    paused and the tray does not signal it itself; the service continues it on the answer
    (tests/integration/test_service_freeze.py)."""
    verdicts = ServiceVerdicts(wait=30)
    live = rig.tray(options=TrayOptions(rules=verdicts))
    h = live.hold()
    live.wait_user(h.pid)
    [user] = [u for u in live.controller.snapshot().users if u.usage.process is not None
              and u.usage.process.pid == h.pid]
    usage = user.usage
    verdicts.heard({"kind": usage.device.kind.value, "device": usage.device.id,
                    "pid": h.pid, "create_time": usage.process.create_time if usage.process
                    else None, "verdict": "ask", "explanation": "no rule matches; asking",
                    "mode": "ask", "paused": True})
    qtbot.waitUntil(live.parts.popup.isVisible, timeout=20_000)
    [alert] = live.controller.pending_alerts()
    assert alert.paused and live.parts.popup.why_label.text() == PAUSED_LINE
    assert state_of(h.pid) != "T"  # this test's "service" paused nothing: nor did the tray
    assert rig.freeze.open().frozen() == []


def test_pausing_camguard_drops_the_alert_and_continues_the_app(qtbot: QtBot,
                                                                 rig: Rig) -> None:
    live = rig.tray()
    h = paused_alert(qtbot, live)
    live.controller.pause(60)  # "pause camguard": pending alerts are dropped unanswered
    qtbot.waitUntil(lambda: state_of(h.pid) not in ("T", None), timeout=10_000)
    assert live.controller.pending_alerts() == ()
    h.close()


@pytest.mark.real
def test_a_recording_stream_is_paused_too(qtbot: QtBot, rig: Rig, pulseaudio: SoundServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A real PulseAudio recording client (parecord on a sine source): its stream is the
    usage, and the client is paused while asked, then continued on Allow."""
    monkeypatch.setenv("PULSE_SERVER", pulseaudio.env["PULSE_SERVER"])
    settings = DetectionSettings(camera_globs=(rig.dirs.camera_glob,),
                                 mic_globs=(rig.dirs.mic_glob,), watch_sound_server=True)
    monitor = Monitor(build_detection(settings).sources, SystemClock(), settle=0.002,
                      rescan_interval=30)
    o = TrayOptions()
    o.freeze = rig.freeze.open
    live = launch(qtbot, rig.dirs, rig.holders, o, settings=FREEZING, monitor=monitor)
    rig.lives.append(live)
    rec = subprocess.Popen(parecord(), stdout=subprocess.DEVNULL,
                           env={**os.environ, **pulseaudio.env})
    try:
        qtbot.waitUntil(lambda: any(a.usage.process is not None
                                    and a.usage.process.pid == rec.pid
                                    for a in live.controller.pending_alerts()),
                        timeout=20_000)
        [alert] = live.controller.pending_alerts()
        assert alert.usage.device.kind is DeviceKind.MICROPHONE and alert.paused
        qtbot.waitUntil(lambda: state_of(rec.pid) == "T", timeout=10_000)
        qtbot.mouseClick(live.parts.popup.buttons[Choice.ALLOW_ONCE],
                         Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: state_of(rec.pid) not in ("T", None), timeout=10_000)
        assert rec.poll() is None
    finally:
        rec.kill()
        rec.wait(10)
