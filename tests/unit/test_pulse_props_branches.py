"""Stream attribution's last two cases: on PipeWire a kernel-given pid whose process has
exited is said so (never pinned on whoever reuses the pid later), and an internal stream
with no name at all is still labelled."""

from __future__ import annotations

import subprocess
import sys

import psutil

from camguard.platform.linux.pulse_props import APP_NAME, SEC_PID, attribute
from camguard.platform.process import ProcessDescriber

DESCRIBER = ProcessDescriber()


def gone_pid() -> int:
    """A real pid that names nothing now: a child that exited and was reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not psutil.pid_exists(child.pid)
    return child.pid


def test_a_kernel_pid_that_has_exited_is_said_so_on_pipewire() -> None:
    pid = gone_pid()
    att, ref = attribute({}, {SEC_PID: str(pid), APP_NAME: "rec"}, is_pipewire=True,
                         bridge=lambda _pid: False, describe=DESCRIBER.describe)
    assert ref is None and att.trusted and att.pid is None
    assert att.note.startswith(f"stream of pid {pid} (") and att.note.endswith(
        "), which has exited")


def test_an_internal_stream_without_any_name_is_unnamed() -> None:
    att, ref = attribute({}, None, is_pipewire=False, bridge=lambda _pid: False,
                         describe=DESCRIBER.describe)
    assert ref is None and att.note == "internal stream of the sound server (unnamed)"
