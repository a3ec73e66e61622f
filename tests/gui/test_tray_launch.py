"""`camguard tray` as a user runs it: a real X server, a real tray host, a real alert, a
second launch, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from camguard.platform.clock import SystemClock
from camguard.store.history import HistoryStore
from tests import realenv
from tests.conftest import Holder, make_standin, need_tools
from tests.gui.conftest import hold_display

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[2]


def xdotool(env: dict[str, str], *args: str) -> list[str]:
    out = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True,
                         timeout=10, check=False)
    return out.stdout.split() if out.returncode == 0 else []


def tray_env(tmp_path: Path, session_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(session_env)
    for what in ("config", "data", "state"):
        env[f"CAMGUARD_{what.upper()}_DIR"] = str(tmp_path / what)
    # The tray on its own: a camguard service running on this machine (another test's, or
    # the real one) would make it that service's client.
    env["CAMGUARD_SOCKET"] = str(tmp_path / "no-service.sock")
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "settings.json").write_text(
        json.dumps({"detection": {"watch_sound_server": False}}))
    return env


def tray_cmd(devdir: Path) -> list[str]:
    return [sys.executable, "-m", "camguard", "-v", "tray", "--camera-glob",
            str(devdir / "video*"), "--mic-glob", str(devdir / "snd" / "pcmC*D*c")]


def test_tray_launches_alerts_and_quits_cleanly(x_session: realenv.XSession, tmp_path: Path,
                                                devdir: Path, holders: list[Holder]) -> None:
    need_tools(["xdotool", "xprop"])
    env = tray_env(tmp_path, x_session.env)
    node = make_standin(devdir / "video0")
    cmd = tray_cmd(devdir)
    log = tmp_path / "tray.log"

    def said(text: str) -> bool:
        return text in log.read_text(errors="replace")

    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        realenv.wait_until(lambda: said("tray ready: tray icon"), 60, "the tray icon")
        h = Holder([node])
        holders.append(h)
        realenv.wait_until(lambda: said(f"alert shown: pid={h.pid}"), 30, "the alert")
        realenv.wait_until(lambda: bool(xdotool(env, "search", "--onlyvisible", "--name",
                                                "camguard alert")), 10, "the popup window")
        popups = xdotool(env, "search", "--onlyvisible", "--name", "camguard alert")
        # The popup must never take the keyboard from what the person is typing in. Xvfb has
        # no window manager to give focus on map, so asking who has focus proves nothing;
        # the window's own ICCCM input hint is what a window manager obeys (ICCCM 4.1.7).
        hints = subprocess.run(["xprop", "-id", popups[0], "WM_HINTS"], env=env,
                               capture_output=True, text=True, timeout=10, check=True).stdout
        assert "Client accepts input or input focus: False" in hints, hints
        xdotool(env, "key", "Escape")  # typed elsewhere: the popup never sees it
        # A click into the popup's text (not a button) turns to it: it may take focus and
        # Escape answers "Allow once" (camguard/ui/alert_keys.py).
        xdotool(env, "mousemove", "--window", popups[0], "60", "12", "click", "1")

        def accepts_input() -> bool:
            out = subprocess.run(["xprop", "-id", popups[0], "WM_HINTS"], env=env,
                                 capture_output=True, text=True, timeout=10, check=False)
            return "Client accepts input or input focus: True" in out.stdout

        realenv.wait_until(accepts_input, 10, "the popup accepting focus after a click")
        assert not said("decision allowed-once")
        realenv.wait_until(lambda: xdotool(env, "getwindowfocus") == popups[:1], 10,
                           "the popup focused")
        xdotool(env, "key", "Escape")
        realenv.wait_until(lambda: said("decision allowed-once by user:popup"), 10,
                           "Escape answering Allow once")
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                                cwd=REPO, check=False)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        realenv.wait_until(lambda: said("another camguard was started"), 10, "the show request")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "quitting" in text, text
    store = HistoryStore(tmp_path / "data" / "history.sqlite3", SystemClock(), hash_exes=False)
    try:
        assert [r.pid for r in store.sessions()] == [h.pid]
    finally:
        store.close()


def test_without_a_tray_host_the_main_window_stands_in(tmp_path: Path, devdir: Path
                                                         ) -> None:
    need_tools([*realenv.X_TOOLS, "xprop"])
    xs = realenv.start_x(tmp_path / "x", tray=False, notifications=False)
    env = tray_env(tmp_path, xs.env)
    log = tmp_path / "tray.log"
    try:
        hold_display(xs)
        with log.open("w") as out:
            proc = subprocess.Popen(tray_cmd(devdir), env=env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=REPO)
        try:
            realenv.wait_until(lambda: "tray ready: main window (no tray host)"
                               in log.read_text(), 60, "the main window")
            realenv.wait_until(lambda: bool(xdotool(env, "search", "--onlyvisible", "--name",
                                                    "^camguard$")), 10, "the main window")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    finally:
        xs.stop()
    assert "Traceback" not in log.read_text()


def test_without_a_display_it_says_so_in_one_line(tmp_path: Path, devdir: Path) -> None:
    env = tray_env(tmp_path, {})
    out = subprocess.run(tray_cmd(devdir), env=env, capture_output=True, text=True,
                         timeout=60, cwd=REPO, check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("camguard: error: no graphical session"), out.stderr
    assert "Traceback" not in out.stderr
