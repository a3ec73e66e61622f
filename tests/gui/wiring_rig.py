"""The tray as ``camguard tray`` builds it (shell.build + shell.start over a real Monitor),
in-process so a test can reach every part: real stand-in nodes watched by the real procfs
source, real files for history, settings, rules, lock and event log in tmp folders, and (as
root) the real kill switch on the stand-ins."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from camguard.app import build_detection
from camguard.app.tray import open_history
from camguard.core.blocks import BlockManager
from camguard.core.models import DeviceKind
from camguard.core.settings import DetectionSettings
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.block import LinuxBlocker
from camguard.platform.linux.helper_runner import InProcessHelper
from camguard.platform.linux.kill import Killer
from camguard.store.blocks import JsonBlockStore
from camguard.store.history import HistoryStore
from camguard.store.history_record import SessionRecord
from camguard.ui.controller import AppController
from camguard.ui.ports import AlertSettings
from camguard.ui.shell import EventSource, TrayApp, build, shutdown, start
from camguard.ui.tray_options import TrayOptions
from tests.conftest import IS_ROOT, Holder, make_standin

QUIET = AlertSettings(countdown=600, stopped_linger=600, notifications=False)


@dataclass
class Dirs:
    """CAMGUARD_CONFIG_DIR, _DATA_DIR and _STATE_DIR, set for the test."""

    root: Path
    devdir: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def history(self) -> Path:
        return self.root / "data" / "history.sqlite3"

    @property
    def camera_glob(self) -> str:
        return str(self.devdir / "video*")

    @property
    def mic_glob(self) -> str:
        return str(self.devdir / "snd" / "pcmC*D*c")


@pytest.fixture
def dirs(tmp_path: Path, devdir: Path, monkeypatch: pytest.MonkeyPatch) -> Dirs:
    d = Dirs(tmp_path, devdir)
    for name in ("config", "data", "state"):
        (tmp_path / name).mkdir(mode=0o700)
        monkeypatch.setenv(f"CAMGUARD_{name.upper()}_DIR", str(tmp_path / name))
    return d


@dataclass
class Live:
    parts: TrayApp
    monitor: EventSource
    qtbot: QtBot
    dirs: Dirs
    holders: list[Holder]
    blocks: BlockManager | None = None
    _nodes: int = field(default=0)
    _stopped: bool = False

    @property
    def controller(self) -> AppController:
        return self.parts.controller

    @property
    def store(self) -> HistoryStore:
        assert self.parts.store is not None
        return self.parts.store

    def node(self, kind: DeviceKind = DeviceKind.CAMERA) -> Path:
        self._nodes += 1
        if kind is DeviceKind.CAMERA:
            return make_standin(self.dirs.devdir / f"video{self._nodes}")
        return make_standin(self.dirs.devdir / "snd" / f"pcmC0D{self._nodes}c")

    def hold(self, kind: DeviceKind = DeviceKind.CAMERA, node: Path | None = None) -> Holder:
        """A real child process opening a stand-in node (the monitor finds it)."""
        h = Holder([node or self.node(kind)])
        self.holders.append(h)
        return h

    def wait_user(self, pid: int, present: bool = True, timeout: int = 20_000) -> None:
        def seen() -> bool:
            users = self.controller.snapshot().users
            return any(u.usage.process is not None and u.usage.process.pid == pid
                       for u in users) is present

        self.qtbot.waitUntil(seen, timeout=timeout)

    def settle(self) -> None:
        c = self.controller
        self.qtbot.waitUntil(lambda: c.io.pending == 0 and c.workers.pending == 0,
                             timeout=20_000)

    def session(self, pid: int, decided: bool = True, timeout: float = 20) -> SessionRecord:
        """The pid's session once it has a decision (or at all, with decided=False)."""
        deadline = time.monotonic() + timeout
        while True:
            recs = [r for r in self.store.sessions() if r.pid == pid]
            if recs and (recs[0].decision is not None or not decided):
                return recs[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {'decided ' if decided else ''}session for {pid}: "
                                     f"{recs}")
            self.qtbot.wait(50)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        shutdown(self.parts, self.monitor)
        self.parts.popup.hide()
        self.parts.status.hide()
        for w in (self.parts.popup, self.parts.status, self.parts.main):
            if w is not None:
                w.deleteLater()
        self.parts.controller.deleteLater()


def detection(dirs: Dirs) -> DetectionSettings:
    return DetectionSettings(camera_globs=(dirs.camera_glob,), mic_globs=(dirs.mic_glob,),
                             watch_sound_server=False)


def kill_switch(dirs: Dirs) -> tuple[Killer, BlockManager | None]:
    """The real killer; as root also the real block on the stand-ins (helper state, udev
    rules and sysfs in the tmp folder, as tests/gui/conftest.py does)."""
    killer = Killer()
    if not IS_ROOT:
        return killer, None
    globs = (dirs.camera_glob, dirs.mic_glob)
    tmp = dirs.root
    helper = InProcessHelper(globs, str(tmp / "helper" / "nodes.json"),
                             rules_dir=str(tmp / "rules.d"), run_udevadm=False,
                             sys_root=str(tmp / "sys"))
    blocks = BlockManager(SystemClock(), JsonBlockStore(dirs.state / "blocks.json"),
                          LinuxBlocker((dirs.camera_glob,), (dirs.mic_glob,), killer=killer,
                                       helper=helper, mic=None, rules_dir=str(tmp / "rules.d")))
    return killer, blocks


def launch(qtbot: QtBot, dirs: Dirs, holders: list[Holder], options: TrayOptions, *,
           settings: AlertSettings = QUIET, monitor: EventSource | None = None,
           local_kill_switch: bool = True) -> Live:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    mon: EventSource = monitor or Monitor(build_detection(detection(dirs)).sources,
                                          SystemClock(), settle=0.002, rescan_interval=30)
    killer, blocks = kill_switch(dirs) if local_kill_switch else (None, None)
    clock = SystemClock()
    parts = build(app, mon, clock, killer=killer, blocks=blocks, settings=settings,
                  store=open_history(clock, dirs.history), options=options)
    start(parts, mon)
    return Live(parts, mon, qtbot, dirs, holders, blocks)


@pytest.fixture
def lives() -> Iterator[list[Live]]:
    made: list[Live] = []
    yield made
    for live in made:
        live.stop()


def node_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o7777
