"""The first-run window over real files: the rules file's mode, the autostart entry, the
parental lock, and the marker that keeps it from showing twice; and the tray showing it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from camguard.core.clock import FrozenClock
from camguard.core.decision import Choice
from camguard.core.rules import Mode
from camguard.store.autostart import Autostart, read_entry
from camguard.store.parental_lock import LockGuard
from camguard.store.rules import RuleFile
from camguard.store.ui_settings import welcomed
from camguard.ui.first_run import FirstRunWindow
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
    assert welcomed(dirs.config)
    # The tray menu says who else decides here, under what is live.
    tray = live.parts.tray
    if tray is not None:
        tray.menu.aboutToShow.emit()
        texts = [a.text() for a in tray.menu.actions()]
        assert texts[1] == "Parental lock on" and not tray.menu.actions()[1].isEnabled()
