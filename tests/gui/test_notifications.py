"""Desktop notifications against a real dunst on a private session bus, and the fallbacks.

dunst shows actions in a dmenu-style menu (``dunstctl context``); its ``dmenu`` setting
points at a stand-in picker that chooses the line of the wanted action, exactly as a user
picking from the menu would. dunst then sends the real ActionInvoked signal.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jeepney import DBusAddress, HeaderFields, new_signal
from jeepney.io.blocking import open_dbus_connection
from pytestqt.qtbot import QtBot

from camguard.core.decision import Choice
from camguard.core.models import Device, DeviceKind, Usage
from camguard.ui.assets import icon_path
from camguard.ui.model import Alert, Feedback, Level
from camguard.ui.notifications import NAME, PATH, DesktopNotifier
from camguard.ui.ports import AlertSettings
from tests import realenv
from tests.conftest import Holder, need_tools
from tests.gui.conftest import hold_display, hostile_ref, make_rig

pytestmark = pytest.mark.real

PICKER = """#!/bin/sh
# Stand-in for dmenu: keep the menu for the test, print the line of the wanted action.
tee "{menu}" | grep -F -m1 "$(cat "{want}")"
"""


@dataclass
class Dunst:
    xs: realenv.XSession
    want: Path
    menu: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.xs.env}

    def ctl(self, *args: str) -> str:
        return subprocess.run(["dunstctl", *args], env=self.env, capture_output=True,
                              text=True, timeout=10, check=True).stdout

    def pick(self, nid: int, action: str) -> None:
        """Choose ``action`` of notification ``nid`` from dunst's menu."""
        self.want.write_text(f"[{nid},{action}]")
        self.ctl("context")


@pytest.fixture(scope="module")
def dunst(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dunst]:
    need_tools([*realenv.X_TOOLS, "dunstctl", "xprop"])
    root = tmp_path_factory.mktemp("dunst")
    want, menu = root / "want", root / "menu"
    picker = root / "picker.sh"
    picker.write_text(PICKER.format(menu=menu, want=want))
    picker.chmod(0o755)
    (root / "dunstrc").write_text(f"[global]\n    dmenu = {picker} -p dunst:\n")
    xs = realenv.start_x(root, tray=False, notifications=False)
    try:
        hold_display(xs)
        xs.spawn("dunst", ["dunst", "-config", str(root / "dunstrc")], env=xs.env)
        d = Dunst(xs, want, menu)
        realenv.wait_until(lambda: subprocess.run(
            ["dunstctl", "is-paused"], env=d.env, capture_output=True, timeout=5,
            check=False).returncode == 0, 15, "dunst on the private bus")
        yield d
    finally:
        xs.stop()


def alert(usage: Usage, alert_id: int = 7) -> Alert:
    return Alert(alert_id, usage, time.time())


def started_notifier(qtbot: QtBot, bus: str) -> DesktopNotifier:
    notifier = DesktopNotifier(bus, expire_ms=60_000)
    with qtbot.waitSignal(notifier.ready, timeout=10_000) as ready:
        notifier.start()
    assert ready.args == [True]
    return notifier


def test_notify_reaches_dunst_and_its_action_becomes_a_decision(
        qtbot: QtBot, dunst: Dunst) -> None:
    notifier = started_notifier(qtbot, dunst.xs.bus)
    try:
        assert "actions" in notifier.capabilities
        usage = Usage(Device(DeviceKind.CAMERA, "/dev/video0", "Cam"), hostile_ref("zoom"))
        with qtbot.waitSignal(notifier.sent, timeout=10_000) as sent:
            notifier.notify(alert(usage))
        alert_id, nid = sent.args or [0, 0]
        assert alert_id == 7 and nid > 0
        realenv.wait_until(lambda: int(dunst.ctl("count", "displayed")) >= 1, 10, "shown")
        with qtbot.waitSignal(notifier.decided, timeout=10_000) as decided:
            dunst.pick(nid, "kill")
        assert decided.args == [7, Choice.KILL.value]
        menu = dunst.menu.read_text()
        for line in (f"#Allow once (Camera turned on) [{nid},allow]",
                     f"#Kill app (Camera turned on) [{nid},kill]",
                     f"#Block camera (Camera turned on) [{nid},block]"):
            assert line in menu
    finally:
        notifier.stop()
        dunst.ctl("close-all")


def test_a_notification_answer_goes_through_the_controller(
        qtbot: QtBot, dunst: Dunst, tmp_path: Path, devdir: Path, holders: list[Holder]
        ) -> None:
    notifier = started_notifier(qtbot, dunst.xs.bus)
    rig = make_rig(qtbot, tmp_path, devdir, holders,
                   AlertSettings(countdown=600, notifications=True), notifier=notifier)
    try:
        h, usage = rig.holder()
        with qtbot.waitSignal(notifier.sent, timeout=10_000) as sent:
            rig.start(usage)
        _alert_id, nid = sent.args or [0, 0]
        qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
        dunst.pick(nid, "kill")  # the answer reaches the GUI thread as a queued call
        qtbot.waitUntil(lambda: h.proc.poll() is not None, timeout=15_000)  # really ended
        qtbot.waitUntil(lambda: not rig.popup.isVisible(), timeout=10_000)  # answered once
        rig.settle()
        rec = rig.session(usage)
        assert (rec.decision, rec.decided_by) == ("killed", "user:notification")
        # The popup's answer withdraws the notification of the next alert.
        h2, usage2 = rig.holder()
        with qtbot.waitSignal(notifier.sent, timeout=10_000):
            rig.start(usage2)
        qtbot.waitUntil(lambda: rig.shown_pid() == h2.pid, timeout=10_000)
        rig.popup.buttons[Choice.ALLOW_ONCE].click()
        realenv.wait_until(lambda: int(dunst.ctl("count", "displayed")) == 0, 10, "withdrawn")
    finally:
        notifier.stop()
        rig.controller.workers.shutdown(wait=True)
        rig.controller.io.shutdown(wait=True)
        rig.store.close()
        dunst.ctl("close-all")


def test_a_signal_from_anyone_but_the_daemon_is_ignored(qtbot: QtBot, dunst: Dunst) -> None:
    notifier = started_notifier(qtbot, dunst.xs.bus)
    try:
        usage = Usage(Device(DeviceKind.CAMERA, "/dev/video0"), hostile_ref("app"))
        with qtbot.waitSignal(notifier.sent, timeout=10_000) as sent:
            notifier.notify(alert(usage, 9))
        nid = (sent.args or [0, 0])[1]
        # Another program on the session bus forges "kill" straight to camguard...
        with open_dbus_connection(dunst.xs.bus) as forger:
            msg = new_signal(DBusAddress(PATH, interface=NAME), "ActionInvoked", "us",
                             (nid, "kill"))
            msg.header.fields[HeaderFields.destination] = notifier.unique_name
            forger.send(msg)
        # ...then the user picks "allow" in dunst. The first decision must be the user's.
        with qtbot.waitSignal(notifier.decided, timeout=10_000) as decided:
            dunst.pick(nid, "allow")
        assert decided.args == [9, Choice.ALLOW_ONCE.value]
    finally:
        notifier.stop()
        dunst.ctl("close-all")


def test_process_text_is_escaped_for_the_daemon(qtbot: QtBot, dunst: Dunst) -> None:
    notifier = started_notifier(qtbot, dunst.xs.bus)
    try:
        usage = Usage(Device(DeviceKind.CAMERA, "/dev/video0"), hostile_ref("<b>x</b>&y"))
        with qtbot.waitSignal(notifier.sent, timeout=10_000):
            notifier.notify(alert(usage))
        dunst.ctl("close-all")  # closed notifications move to the history
        history = json.loads(dunst.ctl("history"))
        bodies = [n["body"]["data"] for group in history["data"] for n in group]
        assert any("&lt;b&gt;x&lt;/b&gt;&amp;y (pid" in b for b in bodies), bodies
    finally:
        notifier.stop()


def test_no_session_bus_falls_back_without_crashing(qtbot: QtBot, tmp_path: Path) -> None:
    notifier = DesktopNotifier(f"unix:path={tmp_path}/no-such-bus")
    with qtbot.waitSignal(notifier.ready, timeout=10_000) as ready:
        notifier.start()
    assert ready.args == [False] and notifier.available is False
    usage = Usage(Device(DeviceKind.MICROPHONE, "pulse:mic", "Mic"), hostile_ref("rec\nx"))
    with qtbot.waitSignal(notifier.fallback_requested, timeout=5000) as fell_back:
        notifier.notify(alert(usage))
    title, text = fell_back.args or ["", ""]
    assert title == "Microphone turned on" and text.startswith("rec\\nx (pid")
    notifier.stop()


def test_a_bus_without_a_notification_daemon_falls_back(qtbot: QtBot, tmp_path: Path
                                                        ) -> None:
    need_tools(["dbus-daemon"])
    bus_path = tmp_path / "bus"
    (tmp_path / "bus.conf").write_text(
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd"><busconfig>'
        f"<type>session</type><listen>unix:path={bus_path}</listen><auth>EXTERNAL</auth>"
        '<policy context="default"><allow send_destination="*" eavesdrop="true"/>'
        '<allow eavesdrop="true"/><allow own="*"/></policy>'
        "</busconfig>")  # no service folders: nothing can be started on demand
    bus = realenv.Component(tmp_path)
    bus.spawn("dbus", ["dbus-daemon", f"--config-file={tmp_path / 'bus.conf'}", "--nofork"])
    notifier = DesktopNotifier(f"unix:path={bus_path}")
    try:
        realenv.wait_until(bus_path.exists, 10, "the bus")
        with qtbot.waitSignal(notifier.ready, timeout=10_000) as ready:
            notifier.start()
        assert ready.args == [False]
        with qtbot.waitSignal(notifier.fallback_requested, timeout=5000):
            notifier.notify(alert(Usage(Device(DeviceKind.CAMERA, "/dev/video0"), None)))
    finally:
        notifier.stop()
        bus.stop()


def test_icons_per_sensor_failures_look_like_failures_and_quitting_withdraws(
        qtbot: QtBot, dunst: Dunst, tmp_path: Path) -> None:
    icons = {name: str(icon_path(file)) for name, file in (
        ("camera", "camera"), ("microphone", "microphone"), ("error", "degraded"),
        ("warning", "degraded"))}
    notifier = DesktopNotifier(dunst.xs.bus, expire_ms=60_000, icons=icons)
    with qtbot.waitSignal(notifier.ready, timeout=10_000):
        notifier.start()
    mic = Usage(Device(DeviceKind.MICROPHONE, "pulse:mic", "Built-in Microphone"),
                hostile_ref("recorder"))
    with qtbot.waitSignal(notifier.sent, timeout=10_000):
        notifier.notify(alert(mic, 11))
    with qtbot.waitSignal(notifier.feedback_sent, timeout=10_000) as first:
        notifier.say(Feedback("zoom was closed", "It no longer has the camera.",
                              kind=DeviceKind.CAMERA))
    # The next result replaces the last one: one feedback bubble, not a stack.
    with qtbot.waitSignal(notifier.feedback_sent, timeout=10_000) as second:
        notifier.say(Feedback("Could not block the camera", "No privileges.", Level.ERROR,
                              DeviceKind.CAMERA))
    assert first.args == second.args
    realenv.wait_until(lambda: int(dunst.ctl("count", "displayed")) == 2, 10, "two shown")
    notifier.stop()  # camguard quits: nothing of it stays on screen with dead buttons
    realenv.wait_until(lambda: int(dunst.ctl("count", "displayed")) == 0, 10, "withdrawn")
    history = json.loads(dunst.ctl("history"))
    shown = {n["summary"]["data"]: n for group in history["data"] for n in group}
    assert shown["Microphone turned on"]["icon_path"]["data"] == icons["microphone"]
    failed = shown["Could not block the camera"]
    assert failed["icon_path"]["data"] == icons["error"]
    assert failed["category"]["data"] == "device.error"
