"""The alert popup with real widgets, real child processes and camguard's real ports."""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPointF, QRect, QSize, Qt
from PySide6.QtGui import QEnterEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from camguard.core.decision import Choice
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.core.text import literal
from camguard.store.allowlist import AllowList
from camguard.store.hashing import sha256_file
from camguard.ui.alert import WINDOW_TITLE, placement
from camguard.ui.alert_text import LIMITS
from camguard.ui.elided import ElidedLabel
from camguard.ui.model import Feedback, Level, TrayState
from camguard.ui.ports import AlertSettings
from tests.conftest import need_root
from tests.gui.conftest import Rig, hostile_ref

pytestmark = pytest.mark.real


def click(qtbot: QtBot, rig: Rig, decision: Choice) -> list[object]:
    button = rig.popup.buttons[decision]
    assert button.isEnabled()
    with qtbot.waitSignal(rig.popup.decided, timeout=5000) as blocker:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    return list(blocker.args or [])


def test_popup_names_the_app_and_never_takes_focus(qtbot: QtBot, rig: Rig) -> None:
    h, usage = rig.holder()
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    popup = rig.popup
    p = usage.process
    assert p is not None
    assert popup.windowTitle() == WINDOW_TITLE
    assert popup.name_label.full_text() == literal(p.name, LIMITS["name"])
    assert popup.exe_label.full_text() == literal(p.exe, LIMITS["exe"])
    assert popup.process_label.full_text() == f"process {h.pid}, user {literal(p.user, 32)}"
    assert usage.device.id in popup.device_label.full_text()
    assert popup.title_label.text() == "Camera turned on"
    assert popup.buttons[Choice.BLOCK].text() == "&Block camera"
    flags = popup.windowFlags()
    for flag in (Qt.WindowType.Tool, Qt.WindowType.FramelessWindowHint,
                 Qt.WindowType.WindowStaysOnTopHint, Qt.WindowType.WindowDoesNotAcceptFocus):
        assert flags & flag
    assert popup.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    # (Whether focus stays put is checked on a real X server in test_tray_launch: the
    # offscreen platform hands focus to every window it shows.)
    # Placed inside the screen's free area, at its right edge.
    screen = QGuiApplication.primaryScreen()
    assert screen is not None
    area = screen.availableGeometry()
    assert area.contains(popup.frameGeometry())
    assert popup.frameGeometry().right() > area.center().x()


def test_allow_once_records_the_decision_and_leaves_the_app_alone(qtbot: QtBot, rig: Rig
                                                                   ) -> None:
    h, usage = rig.holder()
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    alert_id = rig.popup.view.alert.id if rig.popup.view else -1
    assert click(qtbot, rig, Choice.ALLOW_ONCE) == [alert_id, "allowed-once"]
    rig.settle()
    rec = rig.session(usage)
    assert (rec.decision, rec.decided_by) == ("allowed-once", "user:popup")
    assert h.proc.poll() is None
    assert not rig.popup.isVisible()
    # Allowed once for this run of the app: reopening the device does not ask again.
    again = Usage(Device(DeviceKind.CAMERA, usage.device.id + "-b"), usage.process)
    rig.start(again)
    rig.settle()
    assert rig.controller.pending_alerts() == ()


def test_always_allow_lists_the_binary_and_the_next_use_is_not_asked(qtbot: QtBot, rig: Rig
                                                                      ) -> None:
    h, usage = rig.holder()
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    click(qtbot, rig, Choice.ALWAYS_ALLOW)
    rig.settle()
    assert usage.process is not None
    [entry] = AllowList(rig.store.db).entries()
    assert (entry.exe, entry.kind) == (usage.process.exe, DeviceKind.CAMERA)
    assert entry.sha256 == sha256_file(usage.process.exe)
    assert rig.session(usage).decision == "always-allowed"
    # A new process of the same binary: no popup, shown as allowed, recorded as such.
    _h2, usage2 = rig.holder()
    rig.start(usage2)
    rig.settle()
    assert rig.controller.pending_alerts() == ()
    assert not rig.popup.isVisible()
    [user2] = [u for u in rig.controller.snapshot().users if u.key == usage2.key]
    assert user2.allowed
    rec = rig.session(usage2)
    assert (rec.decision, rec.decided_by) == ("always-allowed", "allow-list")


def test_kill_ends_the_real_process_off_the_gui_thread(qtbot: QtBot, rig: Rig) -> None:
    h, usage = rig.holder()
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    with qtbot.waitSignal(rig.controller.message, timeout=15_000) as said:
        click(qtbot, rig, Choice.KILL)
    assert h.proc.wait(10) is not None
    title, text = said.args or ["", ""]
    assert usage.process is not None
    assert (title, text) == (f"{usage.process.name} was closed",
                             "It no longer has the camera."), (title, text)
    assert rig.session(usage).decision == "killed"


def test_block_switches_the_device_off(qtbot: QtBot, rig: Rig) -> None:
    need_root()
    h, usage = rig.holder()
    node = usage.device.id
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    try:
        click(qtbot, rig, Choice.BLOCK)
        qtbot.waitUntil(lambda: DeviceKind.CAMERA in rig.controller.snapshot().blocked,
                        timeout=20_000)
        assert stat.S_IMODE(os.stat(node).st_mode) == 0  # nobody may open it now
        assert h.proc.wait(10) is not None  # and its holder was ended
        rig.stop(usage, rig.session(usage).start, rig.session(usage).start + 1)
        assert rig.tray.state is TrayState.BLOCKED
        assert rig.session(usage).decision == "blocked"
    finally:
        rig.controller.unblock_kind(DeviceKind.CAMERA)
        qtbot.waitUntil(lambda: DeviceKind.CAMERA not in rig.controller.snapshot().blocked,
                        timeout=20_000)
    assert stat.S_IMODE(os.stat(node).st_mode) == 0o666


@pytest.mark.parametrize("privileged", [False])
def test_block_without_the_helper_ends_this_accounts_holder(qtbot: QtBot, rig: Rig) -> None:
    """The path of an account without the installed helper (the production blocker with no
    helper): the node's mode is left alone, this account's holder is ended, the camera is
    listed as blocked (the tray guards it), and unblocking lifts it."""
    h, usage = rig.holder()
    node = usage.device.id
    mode = stat.S_IMODE(os.stat(node).st_mode)
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    with qtbot.waitSignal(rig.controller.message, timeout=20_000) as said:
        click(qtbot, rig, Choice.BLOCK)
    try:
        assert h.proc.wait(10) is not None  # this account's holder was ended
        title, text = said.args
        assert title == "Camera blocked"
        # Only this account's apps are kept off, and the words say so.
        assert text.startswith("Your apps cannot use the camera until you unblock it. ")
        assert "Other accounts are not covered" in text and "privileged helper" in text
        qtbot.waitUntil(lambda: DeviceKind.CAMERA in rig.controller.snapshot().blocked,
                        timeout=20_000)
        assert stat.S_IMODE(os.stat(node).st_mode) == mode  # no privileges: mode unchanged
        # What the block saved to undo: only the account guard (nothing at the OS level).
        saved = json.loads((rig.devdir.parent / "state" / "blocks.json").read_text())
        assert '"user-guard"' in json.dumps(saved) and '"node"' not in json.dumps(saved)
        assert rig.session(usage).decision == "blocked"
    finally:
        rig.controller.unblock_kind(DeviceKind.CAMERA)
        qtbot.waitUntil(lambda: DeviceKind.CAMERA not in rig.controller.snapshot().blocked,
                        timeout=20_000)


@pytest.mark.parametrize("alert_settings", [
    AlertSettings(countdown=0.3, default_decision=Choice.KILL, notifications=False)])
def test_countdown_applies_the_default_decision(qtbot: QtBot, rig: Rig) -> None:
    h, usage = rig.holder()
    with qtbot.waitSignal(rig.popup.timed_out, timeout=10_000):
        rig.start(usage)
    assert h.proc.wait(10) is not None
    rig.settle()
    rec = rig.session(usage)
    assert (rec.decision, rec.decided_by) == ("killed", "timeout")
    assert not rig.popup.isVisible()


def test_alerts_queue_and_show_one_at_a_time_in_order(qtbot: QtBot, rig: Rig) -> None:
    started = [rig.holder() for _ in range(3)]
    for _h, usage in started:
        rig.start(usage)
    qtbot.waitUntil(lambda: len(rig.controller.pending_alerts()) == 3, timeout=10_000)
    seen = []
    for left in (3, 2, 1):
        qtbot.waitUntil(lambda: rig.shown_pid() is not None)
        seen.append(rig.shown_pid())
        assert rig.popup.position_label.text() == (f"1 of {left}" if left > 1 else "")
        click(qtbot, rig, Choice.ALLOW_ONCE)
    assert seen == [h.pid for h, _ in started]
    assert not rig.popup.isVisible()


HOSTILE = [
    "<b>bold</b><img src='x' onerror='alert(1)'><a href='http://e'>link</a>",
    "evil\x1b[31mred\x07\nsecond line\r\x00\u202etxt.exe",
    "A" * 65536,
    "bad-bytes-\udcff\udcfe-\ud800-end",
]


@pytest.mark.parametrize("name", HOSTILE, ids=["markup", "controls", "64k", "surrogates"])
def test_hostile_text_is_shown_literally(qtbot: QtBot, rig: Rig, name: str) -> None:
    size_before = rig.popup.size()
    usage = Usage(Device(DeviceKind.CAMERA, "/dev/video<i>9</i>", name, "/dev/video<i>9</i>"),
                  hostile_ref(name, exe="/tmp/" + name[:200]), note=name)
    rig.start(usage)
    qtbot.waitUntil(rig.popup.isVisible, timeout=10_000)
    popup = rig.popup
    assert popup.name_label.full_text() == literal(name, LIMITS["name"])
    assert popup.exe_label.full_text() == literal("/tmp/" + name[:200], LIMITS["exe"])
    assert popup.note_label.full_text() == literal(name, LIMITS["note"])
    assert literal(name, LIMITS["device"]) in popup.device_label.full_text()
    for label in popup.findChildren(QLabel):
        if label is not popup.icon_label:
            assert label.textFormat() == Qt.TextFormat.PlainText
        assert len(label.text()) < 400
        assert "\n" not in label.text() and "\x1b" not in label.text()
        if isinstance(label, ElidedLabel) and label.is_elided():
            # Cut at a character, with an ellipsis; the whole text (escaped) in the tooltip.
            assert label.text().endswith("…") or "…" in label.text()
            assert label.toolTip().startswith("<qt>") and "<b>" not in label.toolTip()
    assert popup.size() == size_before  # the buttons are where they were
    # The tray says the same, as escaped text in a tooltip Qt renders as rich text.
    tip = rig.tray.icon.toolTip()
    assert "<b>" not in tip and "<img" not in tip and "\x1b" not in tip
    assert any(literal(name, 40)[:30] in line for line in rig.tray.tooltip_lines)


@pytest.mark.parametrize("alert_settings", [
    AlertSettings(countdown=600, stopped_linger=0.5, notifications=False)])
def test_an_app_that_stops_updates_its_popup_then_it_goes(qtbot: QtBot, rig: Rig) -> None:
    h, usage = rig.holder()
    ev = rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    alert_id = rig.popup.view.alert.id if rig.popup.view else -1
    with qtbot.waitSignal(rig.popup.dismissed, timeout=10_000) as gone:
        rig.stop(usage, ev.at, ev.at + 3)
        assert rig.popup.isVisible()
        assert rig.popup.status_label.text().startswith("Stopped after 3s.")
        assert not rig.popup.buttons[Choice.KILL].isEnabled()
        assert rig.popup.buttons[Choice.BLOCK].isEnabled()
    assert gone.args == [alert_id]
    assert not rig.popup.isVisible()
    rig.settle()
    rec = rig.session(usage)
    assert rec.end is not None and rec.decision is None  # nobody answered: nothing invented


def test_no_popup_while_paused_but_the_tray_still_shows_the_camera(qtbot: QtBot, rig: Rig
                                                                   ) -> None:
    rig.controller.pause(3600)
    assert rig.tray.state is TrayState.PAUSED
    h, usage = rig.holder()
    rig.start(usage)
    rig.settle()
    assert rig.tray.state is TrayState.CAMERA
    assert rig.controller.pending_alerts() == () and not rig.popup.isVisible()
    rig.controller.resume()
    assert not rig.controller.paused
    assert h.proc.poll() is None


@pytest.mark.parametrize("case", [
    (DeviceKind.SCREEN, "pipewire:xdpw_stream", "Screen capture turned on"),
    (DeviceKind.LOCATION, "geoclue", "Location turned on")])
def test_a_screen_cast_or_location_popup_says_so_and_offers_no_block(
        qtbot: QtBot, rig: Rig, case: tuple[DeviceKind, str, str], tmp_path: Path) -> None:
    kind, device_id, title = case
    h, cam_usage = rig.holder()
    device = Device(kind, device_id, "no device node", None, "pipewire")
    usage = Usage(device, cam_usage.process, note="obs → pipewire → pipewire:xdpw_stream",
                  via="pipewire")
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    assert rig.popup.title_label.text() == title
    assert not rig.popup.buttons[Choice.BLOCK].isVisible()
    assert rig.popup.buttons[Choice.KILL].isVisible()
    rig.popup.grab().save(str(tmp_path / f"alert-{kind.value}.png"))


def test_one_size_for_every_alert_and_an_ended_app_says_so(qtbot: QtBot, rig: Rig,
                                                           tmp_path: Path) -> None:
    """A long command line ends in an ellipsis at a character (a wide glyph is never cut in
    half), the buttons stay where they were, and an app that has ended shows what was known
    and "ended", not "?" and empty lines."""
    popup = rig.popup
    size = popup.size()
    wide = "漢字" * 200  # wide glyphs: a clip by pixels would halve one
    long_ref = ProcessRef(pid=os.getpid(), create_time=0.0, name="zoom",
                          exe="/opt/zoom/" + "very-long-folder/" * 12 + "zoom",
                          cmdline=("/opt/zoom/zoom", "--url=" + wide), user="alice",
                          parents=("gnome-shell", "systemd"))
    rig.start(Usage(Device(DeviceKind.CAMERA, "/dev/video7", "Integrated Camera",
                           "/dev/video7"), long_ref))
    qtbot.waitUntil(popup.isVisible, timeout=10_000)
    first = {d: b.geometry() for d, b in popup.buttons.items()}
    cmd = popup.cmdline_label
    assert cmd.is_elided() and cmd.text().endswith("…")
    assert cmd.text()[:-1] in cmd.full_text()  # whole characters, then the ellipsis
    assert popup.fontMetrics().horizontalAdvance(cmd.text()) <= cmd.contentsRect().width()
    assert "/opt/zoom/" in popup.exe_label.text() and popup.exe_label.text().endswith("zoom")
    popup.grab().save(str(tmp_path / "alert-long.png"))
    popup.buttons[Choice.ALLOW_ONCE].click()
    # A process described after it ended: a pid and a create time, nothing else.
    ended = ProcessRef(pid=4242, create_time=1.0)
    now = time.time()
    rig.start(Usage(Device(DeviceKind.MICROPHONE, "alsa:pcmC0D0c", "Built-in Microphone"),
                    ended), at=now)
    rig.stop(Usage(Device(DeviceKind.MICROPHONE, "alsa:pcmC0D0c", "Built-in Microphone"),
                   ended), now, now + 0.4)
    qtbot.waitUntil(lambda: popup.view is not None and popup.view.alert.usage.process == ended,
                    timeout=10_000)
    assert popup.size() == size
    assert {d: b.geometry() for d, b in popup.buttons.items()} == first
    assert popup.name_label.text() == "process 4242"
    assert popup.process_label.text() == "process 4242 · ended"
    assert popup.exe_label.text() == "program file not known"
    assert not popup.parents_label.isVisible() and not popup.cmdline_label.isVisible()
    shown = [label.text() for label in popup.findChildren(QLabel) if label.isVisible()]
    assert all("?" not in t for t in shown), shown
    assert popup.title_label.text() == "Microphone turned on"
    for button in popup.buttons.values():  # "Block microphone" fits its button
        assert button.sizeHint().width() <= button.width() + 2, button.text()
    popup.grab().save(str(tmp_path / "alert-ended.png"))


def test_the_pointer_over_the_popup_holds_the_countdown(qtbot: QtBot, rig: Rig) -> None:
    h, usage = rig.holder()
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    popup = rig.popup
    where = QPointF(10, 10)
    QApplication.sendEvent(popup, QEnterEvent(where, where, where))
    held = popup.remaining()
    assert popup.status_label.text().endswith("(paused)")
    qtbot.wait(1200)
    assert popup.remaining() == held  # not a second less
    QApplication.sendEvent(popup, QEvent(QEvent.Type.Leave))
    qtbot.waitUntil(lambda: popup.remaining() < held, timeout=5000)
    assert not popup.status_label.text().endswith("(paused)")


def test_the_popup_never_covers_the_tray_icon() -> None:
    area = QRect(0, 0, 1024, 768)
    size = QSize(440, 260)
    # A panel at the top that reserves no space (trayer): below the icon, at the right.
    tray = QRect(1000, 4, 24, 24)
    top = QRect(placement(area, size, tray), size)
    assert not top.intersects(tray) and top.top() > tray.bottom() and area.contains(top)
    # At the bottom, with the free area above the panel.
    tray = QRect(990, 740, 24, 24)
    bottom = QRect(placement(QRect(0, 0, 1024, 736), size, tray), size)
    assert not bottom.intersects(tray) and bottom.bottom() < tray.top()
    # A panel on the right edge: the popup goes left of it.
    tray = QRect(1000, 600, 24, 24)
    side = QRect(placement(area, size, tray), size)
    assert not side.intersects(tray)


def test_feedback_waits_while_the_popup_is_up(qtbot: QtBot, rig: Rig,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of camguard's lands on its own popup: a result said while an alert is on
    screen is shown once the popup has gone (and the status window has it at once)."""
    shown: list[Feedback] = []
    monkeypatch.setattr(rig.tray, "show_feedback", shown.append)
    h, usage = rig.holder()
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    rig.controller.say("Could not block the microphone", "No privileges.", Level.ERROR,
                       DeviceKind.MICROPHONE)
    qtbot.wait(50)
    assert shown == [] and rig.parts.feedback is not None and len(rig.parts.feedback.held) == 1
    assert rig.parts.status.message_label.text().startswith("Could not block the microphone")
    click(qtbot, rig, Choice.ALLOW_ONCE)
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=5000)
    assert shown[0].level is Level.ERROR
    # With the popup gone, feedback goes out at once.
    rig.controller.say("Camera blocked", "No app can use the camera.")
    assert [f.title for f in shown] == ["Could not block the microphone", "Camera blocked"]


def test_a_probe_raises_nothing_and_a_probe_storm_one_popup_that_says_so(
        qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    """core/probes.py: a probe is history only; a storm is one alert naming the count."""
    from camguard.core.models import EventType, UsageEvent

    h, usage = rig.holder()
    now = time.time()
    rig.feed(UsageEvent(EventType.PROBE, usage, now, now - 0.3))
    rig.settle()
    assert rig.controller.pending_alerts() == () and not rig.popup.isVisible()
    note = ("11 opens under 1.5 s within 42 s (more than 10 a minute); more are kept in "
            "history without a popup")
    rig.feed(UsageEvent(EventType.PROBE_STORM, replace(usage, note=note), now, now - 42,
                        count=11))
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    assert rig.popup.why_label.text() == f"Probe storm: {note}"
    assert rig.popup.title_label.text() == "Camera probed again and again"
    assert not rig.popup.note_label.isVisible()  # said once, as the reason
    assert len(rig.controller.pending_alerts()) == 1
    rig.popup.grab().save(str(tmp_path / "alert-probe-storm.png"))
