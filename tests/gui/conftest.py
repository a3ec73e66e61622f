"""GUI test rig: real widgets (offscreen), a real controller over real ports.

The ports are camguard's own: a SQLite history and allow list in tmp_path, the real Killer,
and (as root) the real device block on stand-in nodes. Events are real core UsageEvents
about real child processes, fed in the order the Monitor would call its sinks.

QT_QPA_PLATFORM is set before pytest-qt creates the QApplication. It is inherited by child
processes too, so tests that launch the real tray remove it from the child's environment.
"""

from __future__ import annotations

import gc
import os

# Before anything below imports Qt: the platform is fixed when the QApplication is made.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from camguard.core.blocks import BlockManager
from camguard.core.decision import OriginOf
from camguard.core.models import (
    Device,
    DeviceKind,
    EventType,
    ProcessRef,
    Usage,
    UsageEvent,
)
from camguard.platform.clock import SystemClock
from camguard.platform.linux.block import LinuxBlocker
from camguard.platform.linux.helper_runner import InProcessHelper
from camguard.platform.linux.kill import Killer
from camguard.platform.process import ProcessDescriber
from camguard.store.allowlist import AllowList
from camguard.store.blocks import JsonBlockStore
from camguard.store.history import HistoryStore
from camguard.store.history_record import SessionRecord
from camguard.ui.adapters import Actions, Allower, HistoryRecorder
from camguard.ui.alert import AlertPopup
from camguard.ui.controller import AppController
from camguard.ui.notifications import DesktopNotifier
from camguard.ui.ports import AlertSettings
from camguard.ui.shell import TrayApp, wire
from camguard.ui.status_window import StatusWindow
from camguard.ui.tray import TrayIcon
from tests import realenv
from tests.conftest import IS_ROOT, Holder, make_standin

DESCRIBER = ProcessDescriber()


@dataclass
class Rig:
    """A wired tray app without the Monitor thread: ``feed`` plays the monitor's part."""

    parts: TrayApp
    store: HistoryStore
    recorder: HistoryRecorder
    devdir: Path
    qtbot: QtBot
    holders: list[Holder]
    _nodes: int = field(default=0)

    @property
    def controller(self) -> AppController:
        return self.parts.controller

    @property
    def popup(self) -> AlertPopup:
        return self.parts.popup

    @property
    def tray(self) -> TrayIcon:
        assert self.parts.tray is not None
        return self.parts.tray

    def feed(self, ev: UsageEvent) -> None:
        # The order the Monitor calls its sinks: the history first, then the UI.
        self.recorder(ev)
        self.controller.handle_event(ev)

    def holder(self, kind: DeviceKind = DeviceKind.CAMERA) -> tuple[Holder, Usage]:
        """A real child process holding a fresh stand-in node, and its usage."""
        self._nodes += 1
        if kind is DeviceKind.CAMERA:
            node = make_standin(self.devdir / f"video{self._nodes}")
        else:
            node = make_standin(self.devdir / "snd" / f"pcmC0D{self._nodes}c")
        h = Holder([node])
        self.holders.append(h)
        ref = DESCRIBER.describe(h.pid)
        assert ref is not None and ref.exe
        device = Device(kind, str(node), f"Stand-in {kind.value} {self._nodes}", str(node),
                        "procfs")
        return h, Usage(device, ref, via="fd")

    def start(self, usage: Usage, at: float | None = None) -> UsageEvent:
        ev = UsageEvent(EventType.STARTED, usage, time.time() if at is None else at)
        self.feed(ev)
        return ev

    def stop(self, usage: Usage, since: float, at: float) -> UsageEvent:
        ev = UsageEvent(EventType.STOPPED, usage, at, since)
        self.feed(ev)
        return ev

    def settle(self) -> None:
        """Wait until every port call has come back to the GUI thread."""
        c = self.controller
        self.qtbot.waitUntil(lambda: c.io.pending == 0 and c.workers.pending == 0,
                             timeout=20_000)

    def session(self, usage: Usage) -> SessionRecord:
        self.store.wait_for_hashes(10)
        [rec] = [r for r in self.store.sessions() if r.pid == (usage.process.pid
                                                              if usage.process else None)
                 and r.device_id == usage.device.id]
        return rec

    def shown_pid(self) -> int | None:
        view = self.popup.view
        if view is None or not self.popup.isVisible() or view.alert.usage.process is None:
            return None
        return view.alert.usage.process.pid


def hold_display(xs: realenv.XSession) -> None:
    """Keep one client connected so the X server never resets under the next one.

    Xvfb resets when its last client disconnects (Xserver(1), "-noreset"); start_x's own
    xdpyinfo check is such a client, and a client connecting during the reset gets
    "cannot open display". ``xprop -spy`` stays connected; it prints the root window's
    properties once connected, and is started again if it lost that race itself.
    """
    log = xs.root / "log" / "xkeeper.log"

    def connected() -> bool:
        proc = xs.procs.get("xkeeper")
        if proc is None or proc.poll() is not None:
            log.unlink(missing_ok=True)
            xs.spawn("xkeeper", ["xprop", "-root", "-spy"], env={"DISPLAY": xs.display})
            return False
        return log.exists() and log.stat().st_size > 0

    realenv.wait_until(connected, 15, "a client that keeps the X server up")


def hostile_ref(name: str, exe: str = "/usr/bin/true") -> ProcessRef:
    """A process description carrying text a hostile process could choose."""
    return ProcessRef(pid=os.getpid(), create_time=0.0, name=name, exe=exe,
                      cmdline=(name, "--flag"), user=name[:64], parents=(name, "bash"))


def make_rig(qtbot: QtBot, tmp_path: Path, devdir: Path, holders: list[Holder],
             settings: AlertSettings, *, notifier: DesktopNotifier | None = None,
             origin_of: OriginOf | None = None, privileged: bool = IS_ROOT) -> Rig:
    """``privileged``: the block runs the helper's code in-process (root); otherwise the
    blocker has no helper, as an account without the installed helper has (it ends this
    account's holders and guards the camera from the tray, platform/linux/user_block.py)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    clock = SystemClock()
    store = HistoryStore(tmp_path / "history.sqlite3", clock)
    recorder = HistoryRecorder(store)
    cams, mics = (str(devdir / "video*"),), (str(devdir / "snd" / "pcmC*D*c"),)
    killer = Killer()
    helper = InProcessHelper((*cams, *mics), str(tmp_path / "helper" / "nodes.json"),
                             rules_dir=str(tmp_path / "rules.d"), run_udevadm=False,
                             sys_root=str(tmp_path / "sys")) if privileged else None
    blocks = BlockManager(clock, JsonBlockStore(tmp_path / "state" / "blocks.json"),
                          LinuxBlocker(cams, mics, killer=killer, helper=helper, mic=None,
                                       rules_dir=str(tmp_path / "rules.d")))
    controller = AppController(clock, Actions(killer, blocks), recorder,
                               Allower(AllowList(store.db), clock, origin_of=origin_of),
                               settings, origin_of=origin_of)
    tray = TrayIcon(clock)
    status = StatusWindow(clock)
    popup = AlertPopup(settings)
    qtbot.addWidget(popup)
    qtbot.addWidget(status)
    parts = TrayApp(app, controller, popup, status, tray, notifier, store)
    wire(parts)
    return Rig(parts, store, recorder, devdir, qtbot, holders)


@pytest.fixture(scope="session", autouse=True)
def _collect_only_on_the_gui_thread() -> Iterator[None]:
    """The tray's rule for the whole GUI suite: no automatic garbage collection, which could
    run on a worker thread and destroy a Qt object there (see camguard/ui/gc_guard.py)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    gc.collect()
    if was_enabled:
        gc.enable()


@pytest.fixture(autouse=True)
def _collect_after_each_test() -> Iterator[None]:
    """What the tray's timer does, once per test: set up before qtbot, so this runs after
    qtbot has closed the test's widgets, on the GUI thread."""
    yield
    gc.collect()


@pytest.fixture
def alert_settings() -> AlertSettings:
    """Long countdowns by default, so only the countdown tests see one run out."""
    return AlertSettings(countdown=600, stopped_linger=600, notifications=False)


@pytest.fixture
def privileged() -> bool:
    """Whether the rig blocks with the helper's code (root); parametrize it to False for the
    path of an account without the installed helper."""
    return IS_ROOT


@pytest.fixture
def rig(qtbot: QtBot, tmp_path: Path, devdir: Path, holders: list[Holder], *,
        alert_settings: AlertSettings, privileged: bool) -> Iterator[Rig]:
    r = make_rig(qtbot, tmp_path, devdir, holders, alert_settings, privileged=privileged)
    yield r
    r.popup.show_view(None)
    if r.parts.notifier is not None:
        r.parts.notifier.stop()
    r.controller.workers.shutdown(wait=True)
    r.controller.io.shutdown(wait=True)
    r.tray.hide()
    r.store.close()
