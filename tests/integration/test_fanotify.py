"""fanotify (root): the opener's pid from the kernel, and opens too short for any /proc scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from camguard.core.models import ProcessRef, UsageEvent
from camguard.platform.linux.fanotify import (
    FAN_CLOSE,
    FAN_OPEN,
    FanEvent,
    FanotifyReader,
    OpenLog,
    open_reader,
    transient_note,
)
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.conftest import Holder, make_standin, need, need_root, nobody_python
from tests.realenv import wait_until
from tests.watching import started, stopped, watching


def reader() -> FanotifyReader:
    need_root()
    fan = open_reader()
    need(fan is not None, "fanotify with FAN_REPORT_FID (root, Linux >= 5.1)")
    assert fan is not None
    return fan


def test_reader_names_the_opener(devdir: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    other = make_standin(devdir / "video1")  # not marked: never reported
    fan = reader()
    try:
        assert fan.watch([str(cam)]) == {}
        holders.append(Holder([other]))
        h = Holder([cam])
        holders.append(h)
        got: list[FanEvent] = []

        def opened() -> bool:
            got.extend(fan.read())
            return any(e.mask & FAN_OPEN and e.pid == h.pid for e in got)

        wait_until(opened, 5, "FAN_OPEN from the holder")
        assert {e.path for e in got} == {str(cam)}
        h.close()
        wait_until(lambda: got.extend(fan.read()) or any(
            e.mask & FAN_CLOSE and e.pid == h.pid for e in got), 5, "FAN_CLOSE")
    finally:
        fan.close()


def test_reader_reports_what_it_cannot_mark(tmp_path: Path) -> None:
    fan = reader()
    try:
        problems = fan.watch([str(tmp_path / "missing")])
        assert list(problems) == [str(tmp_path / "missing")]
    finally:
        fan.close()


BLINK = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)   # grab one frame, as a one-shot tool would
os.close(fd)
print("blinked", flush=True)
sys.stdin.readline()
"""


def test_open_and_close_between_looks_is_reported(devdir: Path) -> None:
    """Open and close ~0.1 ms apart: no /proc scan can see the fd, fanotify still names it."""
    reader().close()
    cam = make_standin(devdir / "video0")
    src = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    with watching([src]) as (monitor, rec):
        wait_until(lambda: monitor.state.devices != (), 5, "the first look")
        child = subprocess.Popen([sys.executable, "-c", BLINK, str(cam)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline() == "blinked\n"
            ev = rec.wait_for(started(child.pid, str(cam)))
            rec.wait_for(stopped(child.pid, str(cam)))
            assert isinstance(ev, UsageEvent) and ev.usage.via == "fanotify"
            assert ev.usage.note.startswith("opened and closed within about")
            assert ev.usage.process is not None
            assert ev.usage.process.exe == os.path.realpath(sys.executable)
            # Reported once: started and stopped, nothing else for that pid.
            mine = [e.type.value for e in rec.usage_events()
                    if e.usage.process and e.usage.process.pid == child.pid]
            assert mine == ["started", "stopped"]
        finally:
            child.kill()
            child.wait()


def test_a_held_use_is_not_reported_again_when_its_close_arrives_late(
        devdir: Path, holders: list[Holder]) -> None:
    """A use a scan saw (from its fd) and that then ended, e.g. by the kill switch, must not
    come back as a transient use when its open+close pair is read after a look that no
    longer saw it (it did, and a policy block rule then blocked the camera again). Driven
    step by step in exactly that order, without the watcher threads."""
    cam = make_standin(devdir / "video0")
    src = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    opened = time.monotonic()
    h = Holder([cam])
    holders.append(h)
    assert [u.process.pid for u in src.snapshot().usages if u.process] == [h.pid]
    h.end()
    assert not src.snapshot().usages   # a look that no longer sees it
    assert not src.snapshot().usages   # and another: it is out of "the last scan" too
    src._fanotify([FanEvent(FAN_OPEN, h.pid, str(cam), opened),
                   FanEvent(FAN_CLOSE, h.pid, str(cam), time.monotonic())])
    assert not src.snapshot().usages   # its late close brings nothing back


def test_opener_that_already_exited_is_said_so() -> None:
    log = OpenLog(lambda pid: None)  # what ProcessDescriber says of a pid that is gone
    log.add([FanEvent(FAN_OPEN, 4242, "/dev/video0", 1.0),
             FanEvent(FAN_CLOSE, 4242, "/dev/video0", 1.0021)])
    hints, done = log.take()
    assert hints == {4242}
    assert [(t.process, t.path) for t in done] == [(ProcessRef(4242, 0.0), "/dev/video0")]
    assert transient_note(done[0]) == ("opened and closed within about 3 ms; the process "
                                       "exited before camguard could name it")
    assert log.take() == (set(), [])


def test_close_without_its_open_or_by_another_pid_is_no_transient() -> None:
    log = OpenLog(lambda pid: ProcessRef(pid, 1.0))
    log.add([FanEvent(FAN_CLOSE, 1, "/dev/video0", 1.0),      # opened before we watched
             FanEvent(FAN_OPEN, 2, "/dev/video0", 1.0),
             FanEvent(FAN_CLOSE, 3, "/dev/video0", 1.0)])     # a fork-shared fd elsewhere
    assert log.take() == ({2}, [])
    log.add([FanEvent(FAN_OPEN | FAN_CLOSE, 5, "/dev/video0", 2.0)])  # merged by the kernel
    assert [t.process.pid for t in log.take()[1]] == [5]
    log.add([FanEvent(FAN_CLOSE, 2, "/dev/video0", 3.0)])  # closes the open of an earlier look
    assert [t.process.pid for t in log.take()[1]] == [2]


UNPRIVILEGED = """
import json, subprocess, sys
sys.path[:0] = sys.argv[2:]
from camguard.platform.linux.fanotify import open_reader
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.watching import started, watching
src = ProcfsSource([sys.argv[1] + "/video*"], [], describer=ProcessDescriber())
with watching([src]) as (monitor, rec):
    holder = subprocess.Popen([sys.executable, "-c",
        "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); print('open', flush=True); "
        "sys.stdin.read()", sys.argv[1] + "/video0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    ev = rec.wait_for(started(holder.pid), timeout=20)
    print(json.dumps({"fanotify": open_reader() is not None, "via": ev.usage.via}), flush=True)
    holder.kill()
"""


def test_without_fanotify_detection_works_as_before(devdir: Path) -> None:
    """As an unprivileged user fanotify_init fails (EPERM): the fd scan still names holders."""
    run_as_nobody, paths = nobody_python(devdir)
    make_standin(devdir / "video0")
    out = subprocess.run(
        [*run_as_nobody, "-c", UNPRIVILEGED, str(devdir), *paths],
        capture_output=True, text=True, cwd="/", timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"fanotify": False, "via": "fd"}


REOPENER = """
import os, sys, time
path = sys.argv[1]
if sys.argv[2] == "held-first":
    fd = os.open(path, os.O_RDONLY)
    print("open", flush=True)
    sys.stdin.readline()
else:
    fd = os.open(path, os.O_RDONLY)
    time.sleep(0.002)
os.close(fd)
time.sleep(float(sys.argv[3]))     # reopened this soon after the close: still a new use
fd = os.open(path, os.O_RDONLY)
print("reopened", flush=True)
sys.stdin.readline()
"""


def test_a_fast_close_and_reopen_is_two_sessions(devdir: Path) -> None:
    """A held camera closed and reopened at once (well within the monitor's 2 ms settle):
    the first session ends, a second starts (fanotify's close is where the use ended, even
    if no look happens in between)."""
    reader().close()
    cam = make_standin(devdir / "video0")
    src = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    with watching([src]) as (_monitor, rec):
        child = subprocess.Popen([sys.executable, "-c", REOPENER, str(cam), "held-first", "0"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdin is not None and child.stdout is not None
            assert child.stdout.readline() == "open\n"
            rec.wait_for(started(child.pid, str(cam)))
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline() == "reopened\n"
            first = len(rec.events)
            rec.wait_for(stopped(child.pid, str(cam)))
            rec.wait_for(started(child.pid, str(cam)), start=first)
            mine = [e.type.value for e in rec.usage_events()
                    if e.usage.process and e.usage.process.pid == child.pid]
            assert mine == ["started", "stopped", "started"]
        finally:
            child.kill()
            child.wait()


def test_a_brief_use_then_a_held_one_is_two_sessions(devdir: Path) -> None:
    """Open 2 ms, close, reopen 2 ms later and hold, all before any look can run: a brief
    session (started and stopped), then a held one, never one merged session."""
    reader().close()
    cam = make_standin(devdir / "video0")
    src = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    with watching([src]) as (_monitor, rec):
        wait_until(lambda: _monitor.state.devices != (), 5, "the first look")
        child = subprocess.Popen([sys.executable, "-c", REOPENER, str(cam), "brief-first",
                                  "0.002"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline() == "reopened\n"
            rec.wait_for(stopped(child.pid, str(cam)))
            first = rec.wait_for(started(child.pid, str(cam)))
            second_at = len(rec.events)
            second = rec.wait_for(started(child.pid, str(cam)), start=second_at)
            mine = [e.type.value for e in rec.usage_events()
                    if e.usage.process and e.usage.process.pid == child.pid]
            assert mine == ["started", "stopped", "started"]
            # The first use is seen by fanotify alone, or by a scan that ran in its 2 ms.
            assert isinstance(first, UsageEvent) and first.usage.via in ("fanotify", "fd")
            assert isinstance(second, UsageEvent) and second.usage.via == "fd"
        finally:
            child.kill()
            child.wait()


def test_a_merged_close_and_reopen_of_a_held_file_ends_its_episode() -> None:
    """The kernel merges one process's unread events on one file (OPEN|CLOSE): on a file
    held before, that is read as close then reopen, a new episode."""
    log = OpenLog(lambda pid: ProcessRef(pid, 1.0))
    log.add([FanEvent(FAN_OPEN, 7, "/dev/video0", 1.0)])
    log.reported(7, "/dev/video0", ProcessRef(7, 1.0), 1, 1.5)
    log.add([FanEvent(FAN_OPEN | FAN_CLOSE, 7, "/dev/video0", 2.0)])
    _, done = log.take()
    assert [(t.opened, t.closed, t.seen) for t in done] == [(1.0, 2.0, True)]
    log.add([FanEvent(FAN_CLOSE, 7, "/dev/video0", 3.0)])
    assert [(t.opened, t.closed, t.seen) for t in log.take()[1]] == [(2.0, 3.0, False)]
