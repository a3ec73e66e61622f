"""The first-run window over real files: the rules file's mode, the autostart entry, the
parental lock, and the marker that keeps it from showing twice; and the tray showing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from camguard.core.clock import FrozenClock
from camguard.core.coverage import Coverage, CoverageState
from camguard.core.decision import Choice
from camguard.core.rules import Mode
from camguard.platform.linux.pipewire import X11_SCREEN, PipeWireSource
from camguard.platform.process import ProcessDescriber
from camguard.store.autostart import Autostart, read_entry
from camguard.store.parental_lock import LockGuard
from camguard.store.rules import RuleFile
from camguard.store.ui_settings import welcomed
from camguard.ui.first_run import FirstRunWindow
from camguard.ui.first_run_gaps import ALL_SEEN
from camguard.ui.tray_options import TrayOptions
from tests.conftest import Holder
from tests.gui import wiring_rig
from tests.gui.test_tray_launch import REPO
from tests.gui.wiring_rig import Dirs, Live, launch

pytestmark = pytest.mark.real

dirs = wiring_rig.dirs  # the tray rig's fixtures
lives = wiring_rig.lives
WATCHING = ["cameras: /dev/video*", "microphones: the sound server (PulseAudio or PipeWire) "
            "and /dev/snd/pcmC*D*c"]


def shots(tmp_path: Path) -> Path:
    return REPO / "docs" / "screenshots" if os.environ.get("CAMGUARD_SCREENSHOTS") == "1" \
        else tmp_path


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Path, RuleFile, Autostart, LockGuard]]:
    cfg = tmp_path / "config"
    auto = Autostart({"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path),
                      "XDG_CONFIG_DIRS": str(tmp_path / "sysxdg")})
    yield (cfg, RuleFile(cfg / "rules.json"), auto,
           LockGuard(cfg / "lock.json", FrozenClock(1_800_000_000.0)))


def test_first_run_sets_mode_autostart_and_a_parental_lock(
        qtbot: QtBot, tmp_path: Path, parts: tuple[Path, RuleFile, Autostart, LockGuard]
        ) -> None:
    cfg, rules, auto, lock = parts
    assert not welcomed(cfg)
    w = FirstRunWindow(cfg, WATCHING, rules=rules, autostart=auto, lock=lock)
    qtbot.addWidget(w)
    w.show()
    assert w.chosen_mode() is Mode.ASK and w.autostart.isChecked()
    assert w.parental.isVisible() and not w.parental.isChecked()
    w.grab().save(str(shots(tmp_path) / "first-run.png"))
    [block_all] = [b for b in w.modes.buttons() if b.property("mode") == Mode.BLOCK_ALL.value]
    block_all.setChecked(True)
    w.parental.setChecked(True)
    w.password.setText("tulip7")
    w.again.setText("tulip")
    assert not w.finish() and "differ" in w.message.text() and not lock.is_set()
    w.again.setText("tulip7")
    with qtbot.waitSignal(w.finished_setup, timeout=10_000) as done:
        assert w.finish()
    assert done.args == [True]
    assert rules.load().mode is Mode.BLOCK_ALL
    keys = read_entry(auto.path)
    assert keys is not None and keys["Exec"].endswith("-m camguard tray")
    assert lock.check("tulip7").ok
    assert welcomed(cfg) and not w.isVisible()


def test_start_with_the_defaults_changes_nothing_but_start_at_login(
        qtbot: QtBot, parts: tuple[Path, RuleFile, Autostart, LockGuard]) -> None:
    cfg, rules, auto, lock = parts
    w = FirstRunWindow(cfg, WATCHING, rules=rules, autostart=auto, lock=lock)
    qtbot.addWidget(w)
    w.start_button.click()
    assert rules.load().mode is None and not rules.path.exists()
    assert auto.is_enabled() and not lock.is_set() and welcomed(cfg)


def test_the_tray_shows_it_at_the_first_start_and_then_blocks_unanswered_alerts(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    lock = LockGuard(dirs.config / "lock.json", FrozenClock(1_800_000_000.0))
    live = launch(qtbot, dirs, holders, TrayOptions(first_run=dirs.config, lock=lock))
    lives.append(live)
    windows = live.parts.windows
    assert windows is not None
    qtbot.waitUntil(lambda: windows.first_run is not None and windows.first_run.isVisible(),
                    timeout=10_000)
    w = windows.first_run
    assert w is not None
    w.autostart.setChecked(False)
    w.parental.setChecked(True)
    w.password.setText("tulip7")
    w.again.setText("tulip7")
    w.start_button.click()
    qtbot.waitUntil(lambda: live.controller.settings.default_decision is Choice.BLOCK,
                    timeout=10_000)
    assert live.controller.settings.parental and live.parts.popup.settings.parental  # Escape
    assert welcomed(dirs.config)
    # The tray menu says who else decides here, under what is live.
    tray = live.parts.tray
    if tray is not None:
        tray.menu.aboutToShow.emit()
        texts = [a.text() for a in tray.menu.actions()]
        assert texts[1] == "Parental lock on" and not tray.menu.actions()[1].isEnabled()


# The real coverage of the device-node source, computed by a process that is not root (it
# imports camguard as root, then drops to nobody's ids): what an ordinary account gets.
UNPRIVILEGED_COVERAGE = """
import json, os, sys
from camguard.core.coverage import coverage_list
from camguard.core.models import DeviceKind
from camguard.platform.linux.coverage import procfs_coverage
if os.geteuid() == 0:
    os.setegid(65534)
    os.seteuid(65534)
globs = {DeviceKind.CAMERA: ("/dev/video*",), DeviceKind.MICROPHONE: ("/dev/snd/pcmC*D*c",)}
print(json.dumps(coverage_list(procfs_coverage("procfs", globs, None, fanotify_active=None))))
"""


def unprivileged_coverage() -> list[Coverage]:
    out = subprocess.run([sys.executable, "-c", UNPRIVILEGED_COVERAGE], capture_output=True,
                         text=True, timeout=120, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return [Coverage(d["sensor"], d["source"], CoverageState(d["state"]), d["reason"])
            for d in json.loads(out.stdout)]


def fits(w: FirstRunWindow) -> bool:
    return all(label.height() >= label.heightForWidth(label.width()) > 0
               for label in w.gap_labels.values())


def test_first_run_says_what_camguard_cannot_see_here_and_why(
        qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        parts: tuple[Path, RuleFile, Autostart, LockGuard]) -> None:
    """The real coverage of an ordinary account in an X11 session with no PipeWire: the
    window names each blind spot once, in words, with what would fix it, and never a
    command to paste; and a hostile reason from a source is shown literally."""
    cfg, rules, auto, lock = parts
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    pipewire = PipeWireSource(ProcessDescriber(), remote=str(tmp_path / "no-pipewire-here"))
    found = [*unprivileged_coverage(), *pipewire.coverage()]
    assert any("not root" in c.reason for c in found)  # the account's real coverage
    assert any(c.reason == X11_SCREEN for c in found)
    hostile = Coverage("location", "geoclue", CoverageState.BLIND,
                       "<b>bold</b>\x1b[31m" + "x" * 70_000)
    calls: list[str] = []

    def coverage() -> list[Coverage]:
        calls.append(threading.current_thread().name)
        return [*found, hostile]

    w = FirstRunWindow(cfg, WATCHING, rules=rules, autostart=auto, lock=lock,
                       coverage=coverage, helper=lambda: False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: not w.loading, timeout=20_000)
    assert calls and calls[0] != threading.current_thread().name  # off the GUI thread
    assert list(w.gap_labels) == ["camera/pipewire", "not-root", "location/geoclue", "x11",
                                  "helper"]  # PipeWire is really absent here
    texts = {k: label.text() for k, label in w.gap_labels.items()}
    assert "other accounts" in texts["not-root"] and "system service" in texts["not-root"]
    assert "X11" in texts["x11"] and "Wayland" in texts["x11"]
    assert "helper" in texts["helper"] and "package" in texts["helper"]
    for label in w.gap_labels.values():
        assert label.textFormat() == Qt.TextFormat.PlainText and label.isVisible()
        assert "sudo" not in label.text() and "$ " not in label.text()
        assert len(label.text()) < 600
    assert "<b>bold</b>" in texts["location/geoclue"]  # literally, not as markup
    assert "\x1b" not in texts["location/geoclue"]
    assert w.autostart.isVisible()  # the one fix offered here: start at login
    qtbot.waitUntil(lambda: fits(w), timeout=5000)  # every wrapped line shown, none cut
    w.shutdown()
    # The screenshot: the same real coverage, without the hostile line.
    shot = FirstRunWindow(cfg, WATCHING, rules=rules, autostart=auto, lock=lock,
                          coverage=lambda: found, helper=lambda: False)
    qtbot.addWidget(shot)
    shot.show()
    qtbot.waitUntil(lambda: not shot.loading, timeout=20_000)
    qtbot.waitUntil(lambda: fits(shot), timeout=5000)
    shot.grab().save(str(shots(tmp_path) / "first-run.png"))
    shot.shutdown()


def test_first_run_with_nothing_missing_says_so(
        qtbot: QtBot, parts: tuple[Path, RuleFile, Autostart, LockGuard]) -> None:
    cfg, rules, auto, lock = parts
    watched = [Coverage("camera", "procfs", CoverageState.WATCHING, "device nodes")]
    w = FirstRunWindow(cfg, WATCHING, rules=rules, autostart=auto, lock=lock,
                       coverage=lambda: watched, helper=lambda: None)
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: not w.loading, timeout=20_000)
    assert w.gap_labels == {}
    assert w._gaps_note.text() == ALL_SEEN
    w.shutdown()
