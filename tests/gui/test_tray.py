"""The tray icon's states, tooltip and menu; the monitor-to-GUI thread hop; the status window."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.decision import Choice
from camguard.core.models import (
    Degraded,
    Device,
    DeviceKind,
    HealthEvent,
    Usage,
)
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from camguard.ui.assets import icon_path, load_icon, state_icon
from camguard.ui.bridge import MonitorBridge
from camguard.ui.model import TrayState
from tests.conftest import Holder, make_standin
from tests.gui.conftest import Rig, hostile_ref
from tests.gui.test_tray_launch import REPO

pytestmark = pytest.mark.real


def opened(menu: QMenu) -> QMenu:
    """The menu as a person sees it when it opens (the tray rebuilds it on aboutToShow;
    while closed it is rebuilt only once the event queue is empty)."""
    menu.aboutToShow.emit()
    return menu


def actions(menu: QMenu) -> dict[str, QAction]:
    return {a.text(): a for a in opened(menu).actions() if a.text()}


def user_menus(menu: QMenu) -> list[QMenu]:
    return [a.menu() for a in opened(menu).actions() if a.menu() is not None
            and a.text() != "Kill switch"]


def test_tray_state_follows_started_and_stopped_events(qtbot: QtBot, rig: Rig) -> None:
    tray = rig.tray
    assert tray.state is TrayState.IDLE
    cam_h, cam = rig.holder(DeviceKind.CAMERA)
    _mic_h, mic = rig.holder(DeviceKind.MICROPHONE)
    cam_ev = rig.start(cam)
    assert tray.state is TrayState.CAMERA
    assert any(f"(pid {cam_h.pid})" in line for line in tray.tooltip_lines)
    mic_ev = rig.start(mic)
    assert tray.state is TrayState.BOTH
    rig.stop(cam, cam_ev.at, cam_ev.at + 1)
    assert tray.state is TrayState.MICROPHONE
    assert not any(f"(pid {cam_h.pid})" in line for line in tray.tooltip_lines)
    rig.stop(mic, mic_ev.at, mic_ev.at + 1)
    assert tray.state is TrayState.IDLE
    rig.controller.handle_event(HealthEvent("pulse", Degraded("pulse", "server down"), 1.0))
    assert tray.state is TrayState.DEGRADED
    assert "degraded: pulse: server down" in tray.tooltip_lines
    rig.controller.handle_event(HealthEvent("pulse", None, 2.0))
    assert tray.state is TrayState.IDLE
    rig.settle()


def test_every_state_has_its_own_icon() -> None:
    for name in ("idle", "camera", "microphone", "both", "blocked", "paused", "degraded",
                 "app"):
        assert icon_path(name) is not None, name  # the SVGs are found, not the fallback
        assert not load_icon(name).isNull()
    looks = {}
    for state in TrayState:
        for degraded in (False, True):
            image: QImage = state_icon(state.value, degraded).pixmap(16, 16).toImage()
            assert not image.isNull()
            looks[(state, degraded)] = bytes(image.constBits())
    plain = [looks[(state, False)] for state in TrayState]
    assert len(set(plain)) == len(plain)  # seven states, seven pictures
    for state in TrayState:
        if state is not TrayState.DEGRADED:  # the badge marks any state as degraded
            assert looks[(state, True)] != looks[(state, False)]
    assert looks[(TrayState.DEGRADED, False)] == looks[(TrayState.IDLE, True)]


def test_menu_lists_each_user_and_its_actions_work(qtbot: QtBot, rig: Rig) -> None:
    tray = rig.tray
    h, usage = rig.holder()
    rig.start(usage)
    rig.settle()
    tray.rebuild_menu()
    [sub] = user_menus(tray.menu)
    assert f"(pid {h.pid}): camera" in sub.title()
    assert list(actions(sub)) == ["Kill app", "Block camera", "Always allow"]
    top = actions(tray.menu)
    for text in ("Pause alerts for 15 min", "Pause alerts for 1 h", "Open camguard…", "History…",
                 "Settings…", "Quit camguard"):
        assert text in top
    with qtbot.waitSignal(rig.controller.history_requested, timeout=2000):
        top["History…"].trigger()
    with qtbot.waitSignal(rig.controller.settings_requested, timeout=2000):
        top["Settings…"].trigger()
    # Kill from the menu answers the pending alert too.
    actions(sub)["Kill app"].trigger()
    assert h.proc.wait(10) is not None
    rig.settle()
    assert rig.controller.pending_alerts() == ()
    rec = rig.session(usage)
    assert (rec.decision, rec.decided_by) == (Choice.KILL.value, "user:tray")


def test_pause_and_resume_from_the_menu(qtbot: QtBot, rig: Rig) -> None:
    tray = rig.tray
    actions(tray.menu)["Pause alerts for 15 min"].trigger()
    assert tray.state is TrayState.PAUSED
    paused_until = rig.controller.snapshot().paused_until
    assert paused_until is not None and paused_until > time.time() + 14 * 60
    [resume] = [a for t, a in actions(tray.menu).items() if t.startswith("Resume alerts")]
    resume.trigger()
    assert tray.state is TrayState.IDLE
    # A short pause ends by itself.
    rig.controller.pause(0.2)
    assert tray.state is TrayState.PAUSED
    qtbot.waitUntil(lambda: tray.state is TrayState.IDLE, timeout=5000)


def test_menu_and_tooltip_show_hostile_names_literally(qtbot: QtBot, rig: Rig) -> None:
    name = "&Quit <b>now</b>\x1b[2J"
    rig.controller.pause(3600)  # no popup needed here
    rig.start(Usage(Device(DeviceKind.CAMERA, "/dev/video0"), hostile_ref(name)))
    tray = rig.tray
    tray.rebuild_menu()
    [sub] = user_menus(tray.menu)
    assert sub.title().startswith("&&Quit <b>now</b>\\x1b[2J")  # && shows one literal &
    tip = tray.icon.toolTip()
    assert "&amp;&amp;" not in tip and "&amp;Quit &lt;b&gt;now&lt;/b&gt;\\x1b[2J" in tip


def test_status_window_lists_users_and_acts(qtbot: QtBot, rig: Rig) -> None:
    status = rig.parts.status
    h, usage = rig.holder()
    rig.start(usage)
    rig.settle()
    assert status.users.count() == 1
    assert f"(pid {h.pid})" in status.users.item(0).text()
    assert usage.process is not None
    assert status.headline.text() == f"Camera in use by {usage.process.name}"
    with qtbot.waitSignal(rig.controller.message, timeout=15_000):
        status.user_buttons[Choice.KILL].click()
    assert h.proc.wait(10) is not None


def test_real_monitor_events_reach_the_gui_thread(qtbot: QtBot, rig: Rig, devdir: Path) -> None:
    """A real Monitor thread over the real /proc source -> MonitorBridge -> queued delivery
    on the GUI thread, for a real child that opens and closes a stand-in camera node."""
    node = make_standin(devdir / "video77")
    source = ProcfsSource([f"{devdir}/video*"], [f"{devdir}/snd/pcmC*D*c"],
                          describer=ProcessDescriber())
    monitor = Monitor([source], SystemClock(), settle=0.002)
    bridge = MonitorBridge()
    monitor.add_sink(rig.recorder)
    monitor.add_sink(bridge.sink)
    seen_on: list[int] = []
    bridge.event_received.connect(lambda _ev: seen_on.append(threading.get_ident()))
    bridge.event_received.connect(rig.controller.handle_event)
    monitor.start()
    try:
        holder = Holder([node])
        rig.holders.append(holder)
        qtbot.waitUntil(lambda: rig.tray.state is TrayState.CAMERA, timeout=10_000)
        qtbot.waitUntil(lambda: any(r.pid == holder.pid for r in rig.store.sessions()),
                        timeout=10_000)
        holder.close()
        qtbot.waitUntil(lambda: rig.tray.state is TrayState.IDLE, timeout=10_000)
        monitor_thread = monitor._thread
        assert monitor_thread is not None and monitor_thread.ident not in seen_on
    finally:
        monitor.stop()
    assert set(seen_on) == {threading.get_ident()} and len(seen_on) >= 2  # started, stopped
    rig.settle()


def test_rebuilding_the_menu_keeps_no_old_submenus(qtbot: QtBot, rig: Rig) -> None:
    """QMenu.clear() leaves the submenus addMenu() made alive as children: rebuilt on every
    state change they grew the tray by ~35 KB per camera use (the soak in test_tray_soak)."""
    tray = rig.tray
    _, usage = rig.holder()
    for _ in range(200):
        rig.start(usage)
        rig.stop(usage, time.time() - 0.01, time.time())
    rig.settle()
    rig.start(usage)
    rig.settle()
    kept = opened(tray.menu).findChildren(QMenu)
    # One "Kill switch" submenu and one per live user, whatever happened before.
    assert len(kept) == 2, [m.title() for m in kept]


def test_status_window_idle_says_so_and_never_in_use_and_blocked_at_once(
        qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    status = rig.parts.status
    status.resize(520, 360)
    status.show()
    assert not status.users.isVisible() and status.empty.isVisible()
    assert "Nothing is using your camera or microphone" in status.empty.text()
    assert status.headline.text() == "No camera or microphone in use"
    shots = REPO / "docs" / "screenshots" if os.environ.get("CAMGUARD_SCREENSHOTS") == "1" \
        else tmp_path
    status.grab().save(str(shots / "status-idle.png"))
    # A microphone blocked (muted) while an app still holds it: blocked, not "in use".
    _h, mic = rig.holder(DeviceKind.MICROPHONE)
    rig.controller._got_blocked(frozenset({DeviceKind.MICROPHONE}))
    rig.start(mic)
    rig.settle()
    head = status.headline.text()
    assert head == "Microphone blocked" and "in use" not in head.lower(), head
    assert rig.tray.state is TrayState.BLOCKED
    assert status.users.item(0).text().endswith(", blocked")
    status.grab().save(str(tmp_path / "status-blocked.png"))
    # The last action's result is news: it goes after a while.
    status._message_clear.setInterval(50)
    status.show_message("Camera blocked", "No app can use the camera.")
    assert status.message_label.text()
    qtbot.waitUntil(lambda: status.message_label.text() == "", timeout=5000)


def test_menu_header_timed_blocks_and_panic(qtbot: QtBot, rig: Rig) -> None:
    tray = rig.tray
    _h, usage = rig.holder()
    rig.controller.pause(3600)
    rig.start(usage)
    rig.settle()
    assert usage.process is not None
    head = opened(tray.menu).actions()[0]
    assert not head.isEnabled()
    assert head.text().startswith(f"Camera in use by {usage.process.name} · alerts paused "
                                  "until ")
    switch = next(a.menu() for a in tray.menu.actions() if a.text() == "Kill switch")
    texts = [a.text() for a in opened(switch).actions() if a.text()]
    assert texts == ["Block camera for 15 min", "Block camera for 1 h",
                     "Block camera until I unblock it", "Block microphone for 15 min",
                     "Block microphone for 1 h", "Block microphone until I unblock it"]
    with qtbot.waitSignal(tray.block_for_requested, timeout=2000) as asked:
        actions(switch)["Block camera for 15 min"].trigger()
    assert asked.args == [DeviceKind.CAMERA, 900.0]
    with qtbot.waitSignal(tray.panic_requested, timeout=2000):
        actions(tray.menu)["Panic: turn camera and microphone off now"].trigger()
    # A timed block shows its end in the header and the switch.
    rig.controller._block_done(DeviceKind.CAMERA, ActionResult(Outcome.DONE, "blocked"),
                               until=time.time() + 900)
    end = time.strftime("%H:%M", time.localtime(time.time() + 900))
    assert f"Camera blocked until {end}" in opened(tray.menu).actions()[0].text() or \
        f"camera blocked until {end}" in opened(tray.menu).actions()[0].text()
    assert f"Unblock camera (blocked until {end})" in actions(switch)


def test_answer_the_alert_is_the_menus_first_item_while_one_waits(qtbot: QtBot,
                                                                  rig: Rig) -> None:
    """The popup from the keyboard alone: the tray menu's first item hands it the keys."""
    from camguard.ui.tray import ANSWER

    tray, popup = rig.tray, rig.popup
    assert ANSWER not in actions(tray.menu)
    h, usage = rig.holder()
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    first = opened(tray.menu).actions()[0]
    assert first.text() == ANSWER and first.isEnabled()
    assert not popup.keys.armed
    first.trigger()
    assert popup.keys.armed
    popup.keys.disarm()
    popup.show_view(None)  # answered or gone: no entry
    assert ANSWER not in actions(tray.menu)
