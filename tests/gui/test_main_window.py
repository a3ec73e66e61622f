"""The main window (the tray's "Open camguard"): each sensor now, the timeline from the real
history, and the coverage from real sources (PipeWire and GeoClue really absent here, so
they are blind and must never be drawn as idle); screen and location tray states; the
History window's sensor filters and camguard's own checks hidden by default."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from camguard.app.detection import Detection, build_detection
from camguard.app.tray import own_sessions
from camguard.core.clock import FrozenClock
from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import Device, DeviceKind, Usage
from camguard.core.settings import DetectionSettings
from camguard.platform.clock import SystemClock
from camguard.platform.linux.geoclue import GeoClueSource
from camguard.platform.linux.pipewire import PipeWireSource
from camguard.platform.linux.procfs import ProcfsSource
from camguard.store.tamper import RunLog
from camguard.ui.history_window import HistoryWindow, history_query
from camguard.ui.main_window import MainWindow
from camguard.ui.model import TrayState
from camguard.ui.sensors import Live, coverage_rows, sensor_views
from camguard.ui.timeline import gap_text, tooltip_text
from camguard.ui.tray import ANSWER, headline
from camguard.ui.tray_options import TrayOptions
from tests.conftest import Holder
from tests.gui.conftest import DESCRIBER, Rig, hostile_ref
from tests.gui.test_tray_launch import REPO
from tests.gui.wiring_rig import Dirs, dirs, launch, lives
from tests.gui.wiring_rig import Live as Live_
from tests.gui.wiring_rig import detection as wiring_detection

__all__ = ["dirs", "lives"]  # fixtures

pytestmark = pytest.mark.real

HOUR = 3600.0


def shots(tmp_path: Path) -> Path:
    return REPO / "docs" / "screenshots" if os.environ.get("CAMGUARD_SCREENSHOTS") == "1" \
        else tmp_path


def detection(devdir: Path, tmp_path: Path) -> Detection:
    """Real sources: the stand-in nodes, and a PipeWire and a system bus that do not exist
    (the components really removed: their sensors are blind)."""
    settings = DetectionSettings(camera_globs=(str(devdir / "video*"),),
                                 mic_globs=(str(devdir / "snd" / "pcmC*D*c"),),
                                 watch_sound_server=False)
    sources = [
        ProcfsSource(settings.camera_globs, settings.mic_globs, describer=DESCRIBER),
        PipeWireSource(DESCRIBER, remote=str(tmp_path / "no-pipewire-here")),
        GeoClueSource(DESCRIBER, bus=f"unix:path={tmp_path / 'no-system-bus'}"),
    ]
    return Detection(settings, sources, SystemClock(), DESCRIBER)


@pytest.fixture
def main(qtbot: QtBot, rig: Rig, devdir: Path, tmp_path: Path) -> Iterator[MainWindow]:
    found = detection(devdir, tmp_path)
    w = MainWindow(SystemClock(), rig.parts.status, query=history_query(rig.store),
                   coverage=found.coverage)
    qtbot.addWidget(w)
    rig.controller.changed.connect(w.show_snapshot)
    yield w
    w.shutdown()
    for source in found.sources:
        source.stop()


def test_main_window_shows_live_use_timeline_and_blind_sensors(
        qtbot: QtBot, rig: Rig, main: MainWindow, tmp_path: Path) -> None:
    now = time.time()
    _h1, cam = rig.holder(DeviceKind.CAMERA)
    _h2, mic = rig.holder(DeviceKind.MICROPHONE)
    # Earlier today: a 10-minute call on the camera and microphone; a short mic use.
    rig.start(cam, at=now - 5 * HOUR)
    rig.stop(cam, now - 5 * HOUR, now - 5 * HOUR + 600)
    rig.start(mic, at=now - 5 * HOUR)
    rig.stop(mic, now - 5 * HOUR, now - 5 * HOUR + 600)
    rig.start(mic, at=now - 2 * HOUR)
    rig.stop(mic, now - 2 * HOUR, now - 2 * HOUR + 45)
    # camguard stopped uncleanly 9 hours ago and started again 2 hours later: a gap.
    rig.store.heartbeat(now - 9 * HOUR)  # its last sign of life
    RunLog(rig.store.db, FrozenClock(now - 9 * HOUR)).begin(111)
    RunLog(rig.store.db, FrozenClock(now - 7 * HOUR)).begin(222)
    _h3, live = rig.holder(DeviceKind.CAMERA)
    rig.start(live)
    rig.settle()
    main.resize(1060, 760)
    main.show()
    qtbot.waitUntil(lambda: main.coverage is not None and len(main.timeline.bars) == 4,
                    timeout=20_000)
    assert live.process is not None
    # The gap is drawn over every lane (grey), not left as a quiet, "unused" stretch.
    [(gap_start, gap_end)] = main.timeline.gaps
    assert (gap_start, gap_end) == (pytest.approx(now - 9 * HOUR, abs=1),
                                    pytest.approx(now - 7 * HOUR, abs=1))
    mid = main.timeline._x((gap_start + gap_end) / 2)
    assert main.timeline.gap_at(mid) == (gap_start, gap_end)
    assert "was not running" in gap_text(gap_start, gap_end)
    assert "not running 1 time(s)" in main.timeline_note.text()
    cards = main.cards
    assert cards[DeviceKind.CAMERA].view.live is Live.IN_USE
    assert cards[DeviceKind.CAMERA].state.text() == f"In use by {live.process.name}"
    # PipeWire and the system bus are absent: screen and location are blind, and say so.
    for kind in (DeviceKind.SCREEN, DeviceKind.LOCATION):
        card = cards[kind]
        assert card.view.live is Live.UNSEEN, card.view
        assert card.state.text() == "camguard cannot see it"
        assert "Not watched" in card.detail.text()
        assert "not in use" not in card.state.text().lower()
    assert main.coverage_table.isVisible() and main.coverage_table.rowCount() >= 4
    states = {(main.coverage_table.item(r, 0).text(), main.coverage_table.item(r, 2).text())
              for r in range(main.coverage_table.rowCount())}
    assert ("Location", "blind") in states and ("Screen", "blind") in states
    assert "camguard cannot see:" in main.coverage_note.text()
    # Their timeline lanes are hatched and say so: an empty lane would read "not used".
    assert main.timeline.blind == {DeviceKind.SCREEN, DeviceKind.LOCATION}
    # The timeline: the camera lane has the old call and the live use (to now).
    kinds = sorted(b.kind.value for b in main.timeline.bars)
    assert kinds == ["camera", "camera", "microphone", "microphone"]
    live_bar = max((b for b in main.timeline.bars if b.kind is DeviceKind.CAMERA),
                   key=lambda b: b.start)
    assert live_bar.record.end is None and live_bar.end >= now
    rect = main.timeline.bar_rect(live_bar)
    hit = main.timeline.bars_at(rect.center().toPoint())
    assert live_bar in hit and "still in use" in tooltip_text(hit)
    main.grab().save(str(shots(tmp_path) / "main-window.png"))
    # The app stops: the card says so, and the timeline closes its bar.
    rig.stop(live, now, time.time())
    rig.settle()
    assert cards[DeviceKind.CAMERA].view.live is Live.IDLE
    qtbot.waitUntil(lambda: all(b.record.end is not None for b in main.timeline.bars),
                    timeout=20_000)
    main.span_choice.setCurrentIndex(1)  # the last 7 days
    qtbot.waitUntil(lambda: not main.loading and len(main.timeline.bars) == 4, timeout=20_000)
    main.grab().save(str(tmp_path / "main-7-days.png"))


def test_blocked_sensor_and_service_without_coverage(qtbot: QtBot, rig: Rig,
                                                     tmp_path: Path) -> None:
    asked = threading.Event()

    def unreported() -> None:  # a service whose status has no "coverage" (an older one)
        asked.set()

    w = MainWindow(SystemClock(), rig.parts.status, query=history_query(rig.store),
                   coverage=unreported)
    qtbot.addWidget(w)
    rig.controller.changed.connect(w.show_snapshot)
    rig.controller._got_blocked(frozenset({DeviceKind.CAMERA}))
    rig.settle()
    w.show()
    try:
        assert w.cards[DeviceKind.CAMERA].view.live is Live.BLOCKED
        assert w.cards[DeviceKind.CAMERA].state.text().startswith("Blocked")
        # Nothing reports coverage: said, not drawn as watched.
        qtbot.waitUntil(lambda: asked.is_set() and not w.coverage_reported, timeout=20_000)
        assert not w.coverage_table.isVisible()
        assert "Not reported" in w.coverage_note.text()
        assert w.cards[DeviceKind.LOCATION].state.text() == "No use reported"
        assert "not reported" in w.cards[DeviceKind.LOCATION].detail.text()
        qtbot.waitUntil(lambda: not w.loading, timeout=20_000)
        assert "Nothing used" in w.timeline.empty_text
        w.grab().save(str(shots(tmp_path) / "main-window-blocked.png"))
    finally:
        w.shutdown()


def test_hostile_text_is_literal_in_cards_coverage_and_timeline(qtbot: QtBot, rig: Rig,
                                                                main: MainWindow) -> None:
    name = "<b>zoom</b>\x1b[2J&amp;"
    usage = Usage(Device(DeviceKind.SCREEN, "pipewire:42", "<i>Screen</i>", "", "pipewire"),
                  hostile_ref(name))
    rig.start(usage)
    rig.settle()
    text = main.cards[DeviceKind.SCREEN].state.text()
    assert text == "Being recorded by <b>zoom</b>\\x1b[2J&amp;", text
    rows = coverage_rows([Coverage("location", "geoclue", CoverageState.PARTIAL,
                                   "<a href='x'>bus</a>\x00" + "y" * 70_000)])
    assert rows[-1][3].startswith("<a href='x'>bus</a>\\x00") and len(rows[-1][3]) < 1000
    main.show()
    qtbot.waitUntil(lambda: any(b.kind is DeviceKind.SCREEN for b in main.timeline.bars),
                    timeout=20_000)
    [bar] = [b for b in main.timeline.bars if b.kind is DeviceKind.SCREEN]
    assert bar.name.startswith("<b>zoom</b>\\x1b[2J")
    main.timeline.grab()  # paints the hostile name without raising


def test_screen_and_location_tray_states(qtbot: QtBot, rig: Rig) -> None:
    h, _ = rig.holder()
    ref = DESCRIBER.describe(h.pid)
    assert ref is not None
    screen = Usage(Device(DeviceKind.SCREEN, "pipewire:77", "Screen cast", "", "pipewire"), ref)
    where = Usage(Device(DeviceKind.LOCATION, "geoclue", "Location", "", "geoclue"), ref)
    rig.start(screen)
    rig.settle()
    tray = rig.tray
    assert tray.state is TrayState.SCREEN
    assert tray.tooltip_lines[0] == f"Screen being recorded by {ref.name}"
    since = time.time()
    rig.stop(screen, since, time.time())
    rig.start(where)
    rig.settle()
    assert tray.state is TrayState.LOCATION
    assert headline(tray.snapshot) == f"Location used by {ref.name}"
    # The menu's header, after "Answer the alert…" while an alert waits (the first item the
    # keyboard reaches).
    texts = [a.text() for a in tray.menu.actions()]
    assert texts[texts[0] == ANSWER] == f"Location used by {ref.name}"
    views = {v.kind: v for v in sensor_views(tray.snapshot, None)}
    assert views[DeviceKind.LOCATION].headline == f"Used by {ref.name}"


def test_history_filters_sensors_and_hides_own_checks(qtbot: QtBot, rig: Rig) -> None:
    me = DESCRIBER.describe(os.getpid())  # this process plays the tray running a self-test
    h, cam = rig.holder()
    assert me is not None
    own = Usage(cam.device, me, via="fd")
    screen = Usage(Device(DeviceKind.SCREEN, "pipewire:9", "Screen cast", "", "pipewire"),
                   cam.process)
    now = time.time()
    for usage in (cam, own, screen):
        rig.start(usage, at=now - 60)
        rig.stop(usage, now - 60, now - 50)
    rig.settle()
    w = HistoryWindow(history_query(rig.store), SystemClock(), own_session=own_sessions())
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.loaded, timeout=20_000):
        w.show()
    pids = sorted(r.pid or 0 for r in w.visible_records())
    assert pids == sorted([h.pid, h.pid]), "camguard's own check is hidden by default"
    assert "1 of camguard's own checks hidden" in w.status.text()
    w.own_toggle.setChecked(True)
    assert os.getpid() in {r.pid for r in w.visible_records()}
    kinds = [w.kind_filter.itemData(i) for i in range(w.kind_filter.count())]
    assert kinds == ["", "camera", "microphone", "screen", "location"]
    w.kind_filter.setCurrentIndex(kinds.index("screen"))
    assert [r.kind for r in w.visible_records()] == [DeviceKind.SCREEN]
    w.shutdown()


def test_open_camguard_shows_the_main_window_over_the_running_monitor(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live_]) -> None:
    """As ``camguard tray`` wires it: the detection's coverage (from the running monitor's
    looks) in TrayOptions, "Open camguard" showing the main window with the status panel."""
    found = build_detection(wiring_detection(dirs))
    live = launch(qtbot, dirs, holders, TrayOptions(coverage=found.coverage),
                  monitor=found.monitor())
    lives.append(live)
    main = live.parts.main
    assert main is not None and live.parts.status.window() is main
    h = live.hold()
    live.wait_user(h.pid)
    live.controller.request_show()
    qtbot.waitUntil(lambda: main.isVisible() and main.coverage is not None, timeout=20_000)
    assert main.cards[DeviceKind.CAMERA].view.live is Live.IN_USE
    assert any(c.sensor == "camera" and c.source == "procfs" for c in main.coverage)
    qtbot.waitUntil(lambda: any(b.record.pid == h.pid for b in main.timeline.bars),
                    timeout=20_000)
    h.close()
    live.wait_user(h.pid, present=False)
    assert main.cards[DeviceKind.CAMERA].view.live is not Live.IN_USE
