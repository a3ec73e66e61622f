"""End to end, as a person meets camguard: a real X server with a real tray host and a real
notification daemon, plain `camguard` started the way the desktop starts it, a real child
process turning on a (stand-in) camera, the popup naming that child, a real mouse click on
"Kill app", and the session with its decision in `camguard history --json`.

Screenshots of the tray, the popup, the tray menu and the history window are saved under
docs/screenshots/ when CAMGUARD_SCREENSHOTS=1 (how the README's pictures are made), and
under the test's tmp folder otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import realenv
from tests.conftest import Holder, make_standin, need_tools
from tests.gui.test_tray_launch import REPO, tray_env, xdotool

pytestmark = pytest.mark.real


def shoot(env: dict[str, str], out: Path, crop: str | None = None) -> Path:
    """A screenshot of the whole X screen (``crop`` as WxH+X+Y) with ImageMagick's import."""
    cmd = ["import", "-window", "root"]
    if crop:
        cmd += ["-crop", crop, "+repage"]
    subprocess.run([*cmd, str(out)], env=env, check=True, timeout=30, capture_output=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return out


Rect = tuple[int, int, int, int]  # x, y, width, height


def window_rect(env: dict[str, str], wid: str) -> Rect:
    geo = subprocess.run(["xdotool", "getwindowgeometry", "--shell", wid], env=env,
                         capture_output=True, text=True, timeout=10, check=False).stdout
    g = dict(line.split("=", 1) for line in geo.split())
    return int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])


def overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and \
        b[1] < a[1] + a[3]


def notification_rects(env: dict[str, str]) -> list[Rect]:
    """dunst's visible notification windows (it maps one window for the stack)."""
    return [r for wid in xdotool(env, "search", "--onlyvisible", "--class", "dunst")
            if (r := window_rect(env, wid))[2] > 1 and r[3] > 1]


def tray_icon_center(env: dict[str, str]) -> tuple[int, int] | None:
    """The embedded tray icon: the small window of class "camguard" docked in trayer's panel
    (its WM_NAME is not searchable by name with xdotool, its class is)."""
    for wid in xdotool(env, "search", "--class", "camguard"):
        geo = subprocess.run(["xdotool", "getwindowgeometry", "--shell", wid], env=env,
                             capture_output=True, text=True, timeout=10, check=False).stdout
        g = dict(line.split("=", 1) for line in geo.split())
        if 8 <= int(g.get("WIDTH", 0)) <= 64 and int(g.get("Y", 99)) < 40:
            return int(g["X"]) + int(g["WIDTH"]) // 2, int(g["Y"]) + int(g["HEIGHT"]) // 2
    return None


def test_a_person_kills_the_app_that_turned_on_the_camera(
        x_session: realenv.XSession, tmp_path: Path, devdir: Path,
        holders: list[Holder]) -> None:
    need_tools(["xdotool", "import"])
    shots = REPO / "docs" / "screenshots" if os.environ.get("CAMGUARD_SCREENSHOTS") == "1" \
        else tmp_path
    env = tray_env(tmp_path, x_session.env)
    node = make_standin(devdir / "video0")
    log = tmp_path / "tray.log"

    def said(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, log.read_text(errors="replace"))

    # Plain `camguard`: no subcommand starts the tray (the desktop's autostart entry does so).
    cmd = [sys.executable, "-m", "camguard", "-vv", "--camera-glob", str(devdir / "video*"),
           "--mic-glob", str(devdir / "snd" / "pcmC*D*c")]
    with log.open("w") as out:
        tray = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        realenv.wait_until(lambda: bool(said("tray ready: tray icon")), 60, "the tray icon")
        # The icon is docked by the tray host a moment after Qt reports it ready.
        realenv.wait_until(lambda: tray_icon_center(env) is not None, 20,
                           "the icon docked in the tray")
        icon = tray_icon_center(env)
        assert icon is not None
        icon_x, icon_y = icon
        shoot(env, shots / "tray-idle.png", "200x40+824+0")

        child = Holder([node])  # a real process turns the camera on
        holders.append(child)
        realenv.wait_until(lambda: bool(said(rf"alert shown: pid={child.pid}\b")), 30,
                           "the popup naming the child")
        # Logged once the popup has laid its buttons out, just after "alert shown".
        realenv.wait_until(lambda: bool(said(r"alert buttons: (.*)")), 10,
                           "the popup's button positions")
        buttons = said(r"alert buttons: (.*)")
        assert buttons is not None
        where = dict(item.split("=") for item in buttons.group(1).split())
        realenv.wait_until(lambda: bool(xdotool(env, "search", "--onlyvisible", "--name",
                                                "camguard alert")), 10, "the popup window")
        (popup_wid,) = xdotool(env, "search", "--onlyvisible", "--name", "camguard alert")
        popup = window_rect(env, popup_wid)
        # One alert surface: no notification on the popup, the tray icon left uncovered.
        assert not any(overlap(popup, n) for n in notification_rects(env))
        assert not overlap(popup, (icon_x - 8, icon_y - 8, 16, 16)), (popup, icon)
        shoot(env, shots / "alert.png",
              f"{popup[2] + 24}x{popup[1] + popup[3] + 12}+{1024 - popup[2] - 24}+0")
        # The icon while the camera is on: the panel's strip, above the popup.
        assert popup[1] >= 40, popup
        shoot(env, shots / "tray-camera.png", "200x40+824+0")
        kill_x, kill_y = where["killed"].split(",")
        subprocess.run(["xdotool", "mousemove", kill_x, kill_y, "click", "1"], env=env,
                       check=True, timeout=10)
        assert child.proc.wait(30) is not None  # "Kill app" really ended it
        # The result comes as a notification once the popup is gone, never on top of it.
        realenv.wait_until(lambda: bool(notification_rects(env)), 20, "the feedback")
        assert not xdotool(env, "search", "--onlyvisible", "--name", "camguard alert")
        shoot(env, tmp_path / "feedback.png", "420x160+604+0")

        def decided() -> list[dict[str, object]]:
            out = subprocess.run([sys.executable, "-m", "camguard", "history", "--json"],
                                 env=env, capture_output=True, text=True, timeout=60,
                                 check=False)
            rows = json.loads(out.stdout or "[]")
            return [r for r in rows if r.get("pid") == child.pid and r.get("end")]

        realenv.wait_until(lambda: bool(decided()), 30, "the closed session in the history")
        (session,) = decided()
        assert session["kind"] == "camera" and session["device"] == str(node)
        assert session["decision"] == "killed" and session["exe"] == os.path.realpath(
            sys.executable)

        # The tray menu, then History… through the keyboard (Up from the bottom: Quit,
        # Settings…, History…), exactly as a person using the keyboard would.
        def visible() -> set[str]:
            return set(xdotool(env, "search", "--onlyvisible", "--class", "camguard"))

        before = visible()
        subprocess.run(["xdotool", "mousemove", str(icon_x), str(icon_y), "click", "3"],
                       env=env, check=True, timeout=10)
        realenv.wait_until(lambda: bool(visible() - before), 10, "the tray menu")
        shoot(env, shots / "tray-menu.png", "480x300+544+0")
        subprocess.run(["xdotool", "key", "Up", "Up", "Up", "Return"], env=env, check=True,
                       timeout=10)
        realenv.wait_until(lambda: bool(xdotool(env, "search", "--onlyvisible", "--name",
                                                "camguard.*history")), 20, "the history window")
        shoot(env, shots / "history.png", "990x605+0+0")

        # The popup from the keyboard alone. Keys reach it only once asked (a key meant for
        # the History window, which has the focus now, must never answer an alert): the
        # tray menu's first item, "Answer the alert…", then Alt+K.
        second = Holder([node])
        holders.append(second)
        realenv.wait_until(lambda: bool(said(rf"alert shown: pid={second.pid}\b")), 30,
                           "the popup naming the second child")
        subprocess.run(["xdotool", "key", "alt+k", "Escape"], env=env, check=True,
                       timeout=10)  # not asked yet: swallowed or the History window's
        assert second.proc.poll() is None and xdotool(env, "search", "--onlyvisible",
                                                      "--name", "camguard alert")
        # A right-click on the icon just after the popup appeared is now and then not
        # answered with a menu on this Xvfb without a window manager (1 run in 3 when this
        # was written; the cause was not found): a person clicks again, and so does this.
        before = visible()
        for _attempt in range(3):
            subprocess.run(["xdotool", "mousemove", str(icon_x), str(icon_y), "click", "3"],
                           env=env, check=True, timeout=10)
            with contextlib.suppress(TimeoutError):
                realenv.wait_until(lambda: bool(visible() - before), 5, "the tray menu")
                break
        realenv.wait_until(lambda: bool(visible() - before), 1, "the tray menu, third click")
        shoot(env, tmp_path / "tray-menu-answer.png", "560x420+464+0")
        subprocess.run(["xdotool", "key", "Down", "Return"], env=env, check=True, timeout=10)
        realenv.wait_until(lambda: said(r"alert keys armed from the keyboard") is not None,
                           10, "the popup taking the keyboard")
        subprocess.run(["xdotool", "key", "alt+k"], env=env, check=True, timeout=10)
        assert second.proc.wait(30) is not None  # Alt+K: "Kill app"

        # A desktop shortcut's command, `camguard tray --answer-alert`, then Escape (for an
        # account without a parental lock: "Allow once").
        third = Holder([node])
        holders.append(third)
        realenv.wait_until(lambda: bool(said(rf"alert shown: pid={third.pid}\b")), 30,
                           "the popup naming the third child")
        armed = len(re.findall(r"alert keys armed from the keyboard",
                               log.read_text(errors="replace")))
        subprocess.run([sys.executable, "-m", "camguard", "tray", "--answer-alert"], env=env,
                       check=True, timeout=60, cwd=REPO)
        realenv.wait_until(lambda: len(re.findall(r"alert keys armed from the keyboard",
                                                  log.read_text(errors="replace"))) > armed,
                           10, "the popup taking the keyboard again")
        subprocess.run(["xdotool", "key", "Escape"], env=env, check=True, timeout=10)
        realenv.wait_until(lambda: not xdotool(env, "search", "--onlyvisible", "--name",
                                               "camguard alert"), 10, "the popup answered")
        assert third.proc.poll() is None  # allowed once: still running

        def decision(pid: int) -> object:
            out = subprocess.run([sys.executable, "-m", "camguard", "history", "--json"],
                                 env=env, capture_output=True, text=True, timeout=60,
                                 check=False)
            return {r.get("pid"): r.get("decision") for r in json.loads(out.stdout or "[]")
                    }.get(pid)

        realenv.wait_until(lambda: decision(third.pid) == "allowed-once", 30,
                           "the third child's answer in the history")
        assert decision(second.pid) == "killed"

        tray.send_signal(signal.SIGTERM)
        assert tray.wait(30) == 0
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        if tray.poll() is None:
            tray.kill()
            tray.wait()
