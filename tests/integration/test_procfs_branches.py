"""The device-node source's remaining decisions, for real: the sound server's own brief
open of a raw capture node is not an app's use; starting the watch twice starts one
watcher; stopping a source never started is harmless; psutil is imported when the watch
starts, not on the first opener's path."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from camguard.platform.linux.fanotify import open_reader
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.conftest import make_standin, need, need_root
from tests.watching import started, watching

pytestmark = pytest.mark.real

BLINK = """
import os, sys
os.close(os.open(sys.argv[1], os.O_RDONLY))
print("blinked", flush=True)
sys.stdin.readline()
"""


def test_the_sound_servers_brief_open_of_a_capture_node_is_not_an_apps_use(
        devdir: Path) -> None:
    need_root()
    reader = open_reader()
    need(reader is not None, "fanotify (root with CAP_SYS_ADMIN)")
    assert reader is not None
    reader.close()
    mic = make_standin(devdir / "snd" / "pcmC0D0c")
    # This python stands in for the sound server's executable; /bin/sh is an app.
    src = ProcfsSource([], [f"{devdir}/snd/pcmC*D*c"], describer=ProcessDescriber(),
                       sound_server_exes=[os.path.realpath(sys.executable)])
    with watching([src]) as (_monitor, rec):
        server = subprocess.Popen([sys.executable, "-c", BLINK, str(mic)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline() == "blinked\n"
            app = subprocess.run(["/bin/sh", "-c", 'exec 3<"$1"; exec 3<&-; echo $$', "sh",
                                  str(mic)], capture_output=True, text=True, check=True)
            rec.wait_for(started(int(app.stdout), str(mic)))  # a look after both opens
            assert not [e for e in rec.usage_events()
                        if e.usage.process and e.usage.process.pid == server.pid]
        finally:
            server.kill()
            server.wait()


def test_one_watcher_however_often_started_and_stop_before_start(devdir: Path) -> None:
    make_standin(devdir / "video0")
    src = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    src.stop()  # never started: nothing to stop

    def watchers() -> int:
        return sum(t.name == "camguard-inotify" for t in threading.enumerate())

    before = watchers()
    src.start(lambda: None)
    try:
        src.start(lambda: None)
        assert watchers() == before + 1
    finally:
        src.stop()
    src.stop()


PSUTIL_AT_START = """
import sys
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
src = ProcfsSource([sys.argv[1] + "/video*"], [], describer=ProcessDescriber())
src.snapshot()  # a one-shot look that finds no holder (status): no psutil
before = "psutil" in sys.modules
src.start(lambda: None)
print(before, "psutil" in sys.modules)
src.stop()
"""


def test_psutil_is_imported_when_the_watch_starts_not_at_the_first_open(
        devdir: Path) -> None:
    """The first opener's alert and freeze must not wait for psutil's import (issue 16)."""
    make_standin(devdir / "video0")
    out = subprocess.run([sys.executable, "-c", PSUTIL_AT_START, str(devdir)],
                         capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.split() == ["False", "True"]
