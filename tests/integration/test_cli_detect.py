"""The headless CLI as a user or a script runs it: real subprocesses, real holders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from camguard.core.serialize import rfc3339
from tests.conftest import Holder, make_standin


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camguard", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          check=False)


@pytest.fixture
def cfg(tmp_path: Path) -> dict[str, str]:
    """An isolated config folder so a developer's own settings never leak into tests."""
    d = tmp_path / "cfg"
    d.mkdir()
    return {"CAMGUARD_CONFIG_DIR": str(d), "CAMGUARD_DATA_DIR": str(tmp_path / "data"),
            "CAMGUARD_STATE_DIR": str(tmp_path / "state"),
            # No sound server for these tests: the pulse source must degrade, not fail.
            "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket"}


def test_status_json_names_the_holder(devdir: Path, holders: list[Holder],
                                      cfg: dict[str, str]) -> None:
    cam = make_standin(devdir / "video0")
    holders.append(Holder([cam]))
    out = run("status", "--json", "--camera-glob", f"{devdir}/video*", "--mic-glob",
              f"{devdir}/snd/pcm*c", env=cfg)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    cams = [d for d in doc["devices"] if d["kind"] == "camera"]
    assert [d["path"] for d in cams] == [str(cam)]
    (user,) = cams[0]["users"]
    assert user["pid"] == holders[0].pid
    assert {"pid", "name", "exe", "user", "cmdline", "since"} <= user.keys()
    # No watcher saw it start: the process start is the earliest the use can have begun.
    assert user["since"] == rfc3339(user["create_time"])
    assert [d["source"] for d in doc["degraded"]] == ["pulse"]  # no server: degraded, exit 0


def test_status_human_output_and_options_after_or_before_command(
        devdir: Path, holders: list[Holder], cfg: dict[str, str]) -> None:
    cam = make_standin(devdir / "video0")
    holders.append(Holder([cam]))
    out = run("--camera-glob", f"{devdir}/video*", "status", env=cfg)
    assert out.returncode == 0
    assert str(cam) in out.stdout and f"pid {holders[0].pid}" in out.stdout
    assert "degraded: pulse" in out.stdout


def test_devices_json(devdir: Path, cfg: dict[str, str]) -> None:
    make_standin(devdir / "video3")
    make_standin(devdir / "snd" / "pcmC0D0c")
    out = run("devices", "--json", "--camera-glob", f"{devdir}/video*", "--mic-glob",
              f"{devdir}/snd/pcmC*D*c", env=cfg)
    doc = json.loads(out.stdout)
    assert sorted((d["kind"], Path(d["path"]).name) for d in doc["devices"]) == [
        ("camera", "video3"), ("microphone", "pcmC0D0c")]


def test_watch_json_lines_and_clean_ctrl_c(devdir: Path, cfg: dict[str, str]) -> None:
    cam = make_standin(devdir / "video0")
    watch = subprocess.Popen(
        [sys.executable, "-m", "camguard", "watch", "--json", "--camera-glob",
         f"{devdir}/video*"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **cfg})
    lines: list[dict[str, object]] = []
    try:
        assert watch.stdout is not None
        # The pulse source degrades first (no server): proof the watch is running.
        lines.append(json.loads(watch.stdout.readline()))
        assert lines[0]["event"] == "degraded"
        h = Holder([cam])
        lines.append(json.loads(watch.stdout.readline()))
        h.close()
        lines.append(json.loads(watch.stdout.readline()))
        h.end()
        watch.send_signal(signal.SIGINT)
        _rest, err = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert [(ln["event"], ln.get("pid")) for ln in lines[1:]] == [
        ("started", h.pid), ("stopped", h.pid)]
    assert lines[1]["kind"] == "camera" and lines[1]["device"] == str(cam)
    assert str(lines[1]["timestamp"]).endswith("Z") and lines[1]["exe"]
    assert watch.returncode == 0 and "Traceback" not in err


def test_watch_exits_cleanly_on_sigterm(devdir: Path, cfg: dict[str, str]) -> None:
    watch = subprocess.Popen([sys.executable, "-m", "camguard", "watch", "--camera-glob",
                              f"{devdir}/video*"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, **cfg})
    assert watch.stdout is not None
    assert watch.stdout.readline().startswith("watching")
    watch.terminate()
    _out, err = watch.communicate(timeout=20)
    assert watch.returncode == 0 and "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["status", "--camera-glob", "relative/video*"],
    ["bogus-command"],
    ["status", "--json", "--no-such-option"],
])
def test_user_mistakes_are_one_clear_line(args: list[str], cfg: dict[str, str]) -> None:
    out = run(*args, env=cfg)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "error:" in out.stderr


def test_corrupt_settings_warn_and_carry_on(tmp_path: Path, cfg: dict[str, str]) -> None:
    (Path(cfg["CAMGUARD_CONFIG_DIR"]) / "settings.json").write_text("{oops")
    out = run("status", "--camera-glob", f"{tmp_path}/none*", env=cfg)
    assert out.returncode == 0 and "warning" in out.stderr and "not valid JSON" in out.stderr


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("camguard ")


HEAVY = ("PySide6", "cv2", "sounddevice", "numpy")


@pytest.mark.parametrize("command", ["status", "devices"])
def test_headless_commands_import_no_gui_or_media_stack(command: str, cfg: dict[str, str]
                                                        ) -> None:
    code = (f"import sys, runpy; sys.argv=['camguard', {command!r}, '--json'];\n"
            "try:\n    runpy.run_module('camguard', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **cfg}, timeout=60, check=False)
    lines = out.stdout.strip().splitlines()
    assert lines and lines[-1] == "LOADED []", (out.returncode, out.stdout, out.stderr)


def test_watch_imports_no_gui_or_media_stack(cfg: dict[str, str]) -> None:
    # SIGTERM once watch has installed its handler (a fixed 1 s timer killed a slow start
    # under load before the handler existed, so nothing was printed).
    # (Waits for the handler to change, not to leave SIG_DFL: coverage.py, measuring this
    # child in `make coverage`, installs one of its own first.)
    code = ("import sys, threading, os, signal, time\n"
            "first = signal.getsignal(signal.SIGTERM)\n"
            "def stop():\n"
            "    end = time.monotonic() + 30\n"
            "    while signal.getsignal(signal.SIGTERM) is first and "
            "time.monotonic() < end:\n"
            "        time.sleep(0.01)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "threading.Thread(target=stop, daemon=True).start()\n"
            "sys.argv=['camguard', 'watch', '--camera-glob', '/nonexistent/v*']\n"
            "from camguard.cli import main\nmain()\n"
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **cfg}, timeout=60, check=False)
    lines = out.stdout.strip().splitlines()
    assert lines and lines[-1] == "LOADED []", (out.returncode, out.stdout, out.stderr)


RENAMED = """
import os, sys
with open("/proc/self/comm", "wb") as fh:   # the process renames itself (prctl PR_SET_NAME)
    fh.write(sys.argv[2].encode("utf-8", "surrogateescape"))
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize(("comm", "shown"), [
    ("\x1b[2Jevil", "\\x1b[2Jevil"),
    ("<b>x</b>", "<b>x</b>"),
    ("tab\there", "tab\\there"),
])
def test_hostile_process_name_is_shown_literally(devdir: Path, cfg: dict[str, str],
                                                 comm: str, shown: str) -> None:
    cam = make_standin(devdir / "video0")
    child = subprocess.Popen([sys.executable, "-c", RENAMED, str(cam), comm],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "open\n"
        human = run("status", "--camera-glob", f"{devdir}/video*", env=cfg)
        assert f"{shown} (pid {child.pid}" in human.stdout
        assert "\x1b" not in human.stdout
        doc = json.loads(run("status", "--json", "--camera-glob", f"{devdir}/video*",
                             env=cfg).stdout)
        assert doc["devices"][0]["users"][0]["name"] == comm  # JSON carries it verbatim
    finally:
        child.kill()
        child.wait()
