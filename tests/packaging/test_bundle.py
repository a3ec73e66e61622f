"""The PyInstaller bundle itself: the same program as the console script, and the Qt parts
the spec declares (and only those)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.conftest import REPO, Artifacts

pytestmark = pytest.mark.real


def both(bundle: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    """The same command through the bundle and through `python -m camguard` (the checkout)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "COLUMNS": "80",
           "CAMGUARD_STATE_DIR": "/nonexistent/s", "CAMGUARD_CONFIG_DIR": "/nonexistent/c",
           "CAMGUARD_DATA_DIR": "/nonexistent/d", "PULSE_SERVER": "unix:/nonexistent/pulse"}
    return tuple(subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                                cwd=REPO, env=env)
                 for cmd in ([str(bundle / "camguard"), *args],
                             [sys.executable, "-m", "camguard", *args]))


@pytest.mark.parametrize("args", [
    ("--help",), ("--version",), ("rules", "--help"), ("selftest", "--help"),
    ("status", "--no-such-option"), ("devices", "--json", "--camera-glob", "/nonexistent/v*",
                                     "--mic-glob", "/nonexistent/m*")])
def test_bundle_behaves_like_the_console_script(artifacts: Artifacts, args: tuple[str, ...]
                                                ) -> None:
    frozen, script = both(artifacts.bundle, *args)
    assert (frozen.returncode, frozen.stdout, frozen.stderr) == (
        script.returncode, script.stdout, script.stderr)


def test_bundle_has_the_declared_qt_parts_only(artifacts: Artifacts) -> None:
    internal = artifacts.bundle / "_internal"
    qt = internal / "PySide6"
    for module in ("QtCore", "QtGui", "QtWidgets", "QtNetwork", "QtSvg"):
        assert list(qt.glob(f"{module}.*.so")), module
    for unused in ("QtQml", "QtQuick", "QtMultimedia", "QtWebEngineCore", "QtSql", "QtDBus"):
        assert not list(qt.glob(f"{unused}.*.so")), unused
    plugins = qt / "Qt" / "plugins"
    for plugin in ("platforms/libqxcb.so", "platforms/libqwayland.so",
                   "platforms/libqoffscreen.so", "iconengines/libqsvgicon.so",
                   "imageformats/libqsvg.so"):
        assert (plugins / plugin).is_file(), plugin
    assert not (plugins / "platformthemes" / "libqgtk3.so").exists()
    assert not list(internal.glob("libgtk-3*")) and not list(internal.glob("libpango*"))
    assert not (internal / "tkinter").exists() and not list(internal.rglob("_tkinter*"))
    icons = sorted(p.name for p in (internal / "resources" / "icons").glob("*.svg"))
    assert icons == sorted(p.name for p in (REPO / "resources" / "icons").glob("*.svg"))
    # The optional self-test modules: bundled exactly when the build could import them.
    archive = subprocess.run([str(Path(sys.executable).parent / "pyi-archive_viewer"), "-l",
                              "-r", "-b", str(artifacts.bundle / "camguard")],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    modules = {line.strip().strip("'") for line in archive.splitlines()}
    assert {"camguard.cli", "camguard.ui.tray", "camguard.platform.linux.helper"} <= modules
    if importlib.util.find_spec("sounddevice") is not None:
        assert "sounddevice" in modules and (internal / "libportaudio.so.2").exists()
    if importlib.util.find_spec("cv2") is not None:
        assert (internal / "cv2").is_dir() and "numpy" in modules


def test_the_bundle_runs_the_freeze_watchdog(artifacts: Artifacts, tmp_path: Path) -> None:
    """Freeze while asking's watchdog is the bundle's own executable (no python -m in a
    bundle): given a journal, it continues what it lists once camguard's pipe closes."""
    import json
    import signal
    import time

    from camguard.platform.linux.freeze import start_ticks, state_of

    child = subprocess.Popen(["sleep", "60"])
    try:
        child.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while state_of(child.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        journal = tmp_path / "frozen.json"
        journal.write_text(json.dumps({"frozen": [
            {"pid": child.pid, "ticks": start_ticks(child.pid), "until": time.time() + 600}]}))
        dog = subprocess.run([str(artifacts.bundle / "camguard"), "freeze-watchdog",
                              str(journal)], input=b"", capture_output=True, timeout=60,
                             check=False)
        assert dog.returncode == 0, dog.stderr
        assert state_of(child.pid) != "T" and not journal.exists()
    finally:
        child.kill()
        child.wait()
