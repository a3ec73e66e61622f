"""The alert's words, without a widget (ui/alert_text.py): what a process controls is shown
literally and bounded, an ended app keeps what was known, a script is named as the program."""

from __future__ import annotations

from camguard.core.models import UNSEEN_PROCESS_NOTE, Device, DeviceKind, ProcessRef, Usage
from camguard.ui.alert_text import LIMITS, alert_text
from camguard.ui.model import Alert

CAM = Device(DeviceKind.CAMERA, "/dev/video0", "Integrated Camera")


def _alert(process: ProcessRef | None, **kw: object) -> Alert:
    return Alert(1, Usage(CAM, process), 0.0, **kw)  # type: ignore[arg-type]


def test_hostile_names_are_literal_and_bounded() -> None:
    p = ProcessRef(42, 1.0, "<b>x</b>\x1b[2J" + "a" * 70_000, "/usr/bin/evil\n",
                   ("evil", "\x00arg"), "bob", ("bash",))
    text = alert_text(_alert(p), 0.0)
    assert text.name.startswith("<b>x</b>\\x1b[2J")
    assert len(text.name) <= LIMITS["name"] + 40  # bounded, with the cut said
    assert "\n" not in text.exe and "\\n" in text.exe
    assert "\x00" not in text.cmdline
    assert text.process == "process 42, user bob"
    assert text.parents == "started by bash"
    assert text.device == "Integrated Camera (/dev/video0)"
    assert text.title == "Camera turned on"


def test_an_ended_app_keeps_what_was_known() -> None:
    p = ProcessRef(7, 1.0, "zoom", "/opt/zoom/zoom", (), "", ())
    text = alert_text(_alert(p, stopped_at=5.0), 0.0)
    assert text.name == "zoom"
    assert text.process == "process 7 · ended"
    assert text.parents == "" and text.exe == "/opt/zoom/zoom"


def test_a_script_is_the_program_and_an_unseen_process_says_why() -> None:
    p = ProcessRef(9, 1.0, "python3", "/usr/bin/python3", ("python3", "/home/a/cam.py"),
                   "a", (), script="/home/a/cam.py")
    text = alert_text(_alert(p), 0.0)
    assert text.name == "cam.py (python3)"
    assert text.exe == "/home/a/cam.py (run by /usr/bin/python3)"
    unseen = alert_text(_alert(None), 0.0)
    assert unseen.name == UNSEEN_PROCESS_NOTE
    assert "more privileges" in unseen.process


def test_a_probe_storm_says_so_once() -> None:
    p = ProcessRef(3, 1.0, "discord", "/usr/bin/discord", (), "", ())
    text = alert_text(Alert(1, Usage(CAM, p, note="12 probes in a minute"), 0.0,
                            why="12 probes in a minute", storm=True), 0.0)
    assert text.title == "Camera probed again and again"
    assert text.why == "Probe storm: 12 probes in a minute"
    assert text.note == ""
