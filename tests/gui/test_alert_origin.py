"""The alert says where the app comes from and, for an app the user trusted, why it asks
again: real widgets, a real child process, its real origin from this machine's dpkg."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from camguard.core.decision import Choice
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.core.origin import ExeOrigin, OriginKind
from camguard.platform.linux.origin import LinuxOriginResolver
from camguard.platform.process import ProcessDescriber
from camguard.ui.model import Alert, AlertView
from camguard.ui.ports import AlertSettings
from camguard.ui.tray import summary_lines
from tests.conftest import Holder, make_standin
from tests.gui.conftest import Rig, hostile_ref, make_rig
from tests.integration.test_origin import (
    PACKAGE,
    Root,
    flatpak_style_process,
    packaged_python,
)

pytestmark = pytest.mark.real


def test_always_allow_holds_after_an_upgrade_and_the_popup_says_why_it_asks_again(
        qtbot: QtBot, tmp_path: Path, devdir: Path, holders: list[Holder],
        alert_settings: AlertSettings) -> None:
    """The whole tray path: the popup's "Always allow" on a package's binary (the real dpkg
    installs it into a throwaway root), dpkg upgrades it (no alert), then the file is
    replaced by other bytes: the popup comes back and says why."""
    python, _package = packaged_python()
    original = Path(python).read_bytes()
    root = Root(tmp_path)
    root.install("1.0", original)
    resolver = LinuxOriginResolver(root.admin, root=str(root.path))

    def origin_of(p: ProcessRef) -> ExeOrigin | None:
        return resolver.origin(p.pid, p.exe)

    rig = make_rig(qtbot, tmp_path, devdir, holders, alert_settings, origin_of=origin_of)
    try:
        h, _usage1 = _run(rig, root, 1)
        qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
        popup = rig.popup
        assert popup.origin_label.full_text().endswith(
            f"from the Debian package {PACKAGE} (checked)")
        assert not popup.why_label.isVisibleTo(popup)
        with qtbot.waitSignal(popup.decided, timeout=5000):
            qtbot.mouseClick(popup.buttons[Choice.ALWAYS_ALLOW], Qt.MouseButton.LeftButton)
        rig.settle()
        h.end()

        root.install("2.0", original + b"\0camguard-origin-test 2.0\0")
        h2, usage2 = _run(rig, root, 2)
        rig.settle()
        assert rig.shown_pid() is None  # allowed: the package's verified update
        assert rig.session(usage2).decision == Choice.ALWAYS_ALLOW.value
        h2.end()

        root.binary.write_bytes(original + b"\0not from dpkg\0")
        h3, _usage3 = _run(rig, root, 3)
        qtbot.waitUntil(lambda: rig.shown_pid() == h3.pid, timeout=10_000)
        assert popup.why_label.isVisibleTo(popup)
        text = popup.why_label.text()
        assert text.startswith("Asking again: ") and (
            f"the file no longer matches its Debian package {PACKAGE}") in text
        assert popup.origin_label.full_text().endswith(
            f"from the Debian package {PACKAGE} (check FAILED)")
        if os.environ.get("CAMGUARD_SCREENSHOTS"):
            popup.grab().save(str(tmp_path / "alert-origin.png"))
    finally:
        rig.popup.show_view(None)
        rig.controller.workers.shutdown(wait=True)
        rig.controller.io.shutdown(wait=True)


def _run(rig: Rig, root: Root, n: int) -> tuple[Holder, Usage]:
    """The package's binary, started, holding a fresh stand-in camera; fed to the tray."""
    node = make_standin(rig.devdir / f"video-origin{n}")
    h = Holder([node], exe=str(root.binary))
    rig.holders.append(h)
    ref = ProcessDescriber().describe(h.pid)
    assert ref is not None
    usage = Usage(Device(DeviceKind.CAMERA, str(node), f"Stand-in camera {n}", str(node),
                         "procfs"), ref, via="fd")
    rig.start(usage)
    return h, usage


def test_a_hostile_sandbox_name_is_shown_literally(qtbot: QtBot, rig: Rig) -> None:
    ref = hostile_ref("zoom")
    hostile = ExeOrigin(OriginKind.FLATPAK, "org.x\n<b>bold</b>\u202e" + "y" * 70_000, None,
                        "stable\x1b[31m")
    usage = Usage(rig.holder()[1].device, ref)
    rig.popup.show_view(AlertView(Alert(3, usage, 0.0, None, "", hostile), 1, 1))
    name = rig.popup.name_label.text()
    assert name.startswith("zoom (Flatpak org.x") and "<b>bold</b>" in name
    assert "\n" not in name and "\u202e" not in name and len(name) < 400
    assert "\x1b" not in rig.popup.exe_label.text()


def test_the_status_names_a_sandboxed_app_by_its_app_id(qtbot: QtBot, tmp_path: Path,
                                                        devdir: Path, holders: list[Holder],
                                                        alert_settings: AlertSettings) -> None:
    resolver = LinuxOriginResolver()

    def origin_of(p: ProcessRef) -> ExeOrigin | None:
        return resolver.origin(p.pid, p.exe)

    rig = make_rig(qtbot, tmp_path, devdir, holders, alert_settings, origin_of=origin_of)
    try:
        with flatpak_style_process(tmp_path) as pid:
            ref = ProcessDescriber().describe(pid)
            assert ref is not None
            node = make_standin(devdir / "video-flatpak")
            usage = Usage(Device(DeviceKind.CAMERA, str(node), "Stand-in camera", str(node),
                                 "procfs"), ref, via="fd")
            rig.start(usage)
            want = f"{ref.name} (Flatpak org.example.Camera (beta)) (pid {pid})"
            qtbot.waitUntil(lambda: any(want in line for line in _status_lines(rig)),
                            timeout=10_000)
            qtbot.waitUntil(lambda: rig.shown_pid() == pid, timeout=10_000)
            assert rig.popup.name_label.text() == f"{ref.name} (Flatpak org.example.Camera " \
                "(beta))"
            assert rig.popup.origin_label.full_text().endswith(
                "from the Flatpak org.example.Camera (beta) (not checkable)")
    finally:
        rig.popup.show_view(None)
        rig.controller.workers.shutdown(wait=True)
        rig.controller.io.shutdown(wait=True)


def _status_lines(rig: Rig) -> list[str]:
    return summary_lines(rig.controller.snapshot(), time.time())


def test_the_popup_names_the_script_an_interpreter_runs(qtbot: QtBot, rig: Rig,
                                                        tmp_path: Path) -> None:
    """A real Python running a real script file: the popup says which script, and a
    hostile script path is shown literally on one line."""
    from tests.conftest import write_holder_script

    script = write_holder_script(tmp_path / "apps" / "video-call.py", "a user's program")
    node = make_standin(tmp_path / "not-watched" / "cam0")  # the rig's monitor: not here
    h = Holder([node], script=script)
    rig.holders.append(h)
    ref = ProcessDescriber().describe(h.pid)
    assert ref is not None and ref.script == str(script)
    usage = Usage(Device(DeviceKind.CAMERA, str(node), "Stand-in camera", str(node),
                         "procfs"), ref)
    rig.popup.show_view(AlertView(Alert(5, usage, time.time(), None, ""), 1, 1))
    assert rig.popup.exe_label.full_text() == f"{script} (run by {ref.exe})"
    assert rig.popup.name_label.text() == f"video-call.py ({ref.name})"
    if os.environ.get("CAMGUARD_SCREENSHOTS"):
        rig.popup.grab().save(str(tmp_path / "alert-script.png"))
    hostile = ProcessRef(ref.pid, ref.create_time, "python3", ref.exe, ref.cmdline,
                         ref.user, script="/tmp/<b>x</b>\n\u202eevil.py")
    rig.popup.show_view(AlertView(Alert(6, Usage(usage.device, hostile), time.time(), None,
                                        ""), 1, 1))
    shown = rig.popup.exe_label.full_text()
    assert shown.startswith("/tmp/<b>x</b>") and shown.endswith(f"(run by {ref.exe})")
    assert "\n" not in shown and "\u202e" not in shown
