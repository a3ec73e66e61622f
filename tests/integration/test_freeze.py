"""Freeze while asking (issue 16): real processes stopped and continued, and never left
frozen when camguard is killed, hangs, or starts again; and why the open() itself cannot
be held on a device node (the kernel's fanotify permission events do not reach one)."""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from camguard.core.freeze import MAX_FREEZE
from camguard.core.models import MonitorEvent
from camguard.platform import current
from camguard.platform.linux.freeze import (
    JournaledFreezer,
    start_ticks,
    state_of,
    thaw_recorded,
    watchdog_argv,
)
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.conftest import make_standin, need_root
from tests.watching import started, watching

REPO = Path(__file__).resolve().parents[2]

# Answers each line on stdin with "ok"; on "open PATH" opens it (and keeps it) first.
ECHO = """
import os, sys
held = []
for line in sys.stdin:
    if line.startswith("open "):
        held.append(os.open(line[5:].strip(), os.O_RDONLY))
    sys.stdout.write("ok\\n"); sys.stdout.flush()
"""

# camguard's side in a process of its own, so the test can kill it or hang it: freezes
# argv[2] and says so, then waits for stdin to close (it never answers: a camguard that
# hangs, or one killed by the test). With argv[5] (a stand-in for the PyInstaller bundle's
# executable) it runs as the bundle does: sys.frozen set, sys.executable that program.
CAMGUARD_SIDE = """
import sys
sys.path.insert(0, sys.argv[4])
from pathlib import Path
if sys.argv[5:]:
    sys.frozen = True
    sys.executable = sys.argv[5]
import psutil
from camguard.platform.linux.freeze import JournaledFreezer
freezer = JournaledFreezer(Path(sys.argv[1]), limit=float(sys.argv[3]), eager=True)
pid = int(sys.argv[2])
r = freezer.freeze(pid, psutil.Process(pid).create_time())
print("frozen" if r.ok else r.message, flush=True)
sys.stdin.read()
"""
# The bundle's executable, played by a script: the camguard command, as the bundle is.
BUNDLE = """#!/bin/sh
export PYTHONPATH={repo}
exec {python} -m camguard "$@"
"""


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.01)


def stopped(pid: int) -> bool:
    return state_of(pid) == "T"


def ctime(pid: int) -> float:
    import psutil

    return psutil.Process(pid).create_time()


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", ECHO], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    yield proc
    os.kill(proc.pid, signal.SIGCONT)
    proc.kill()
    proc.wait()


def ask(proc: subprocess.Popen[str], line: str, timeout: float = 10.0) -> str | None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else None


def test_a_frozen_process_does_nothing_until_thawed(child: subprocess.Popen[str],
                                                    tmp_path: Path) -> None:
    journal = tmp_path / "frozen.json"
    freezer = JournaledFreezer(journal)
    try:
        assert ask(child, "ping") == "ok\n"
        assert freezer.freeze(child.pid, ctime(child.pid)).ok
        wait_until(lambda: stopped(child.pid))  # SIGSTOP takes effect when it is scheduled
        recorded = json.loads(journal.read_text())["frozen"]
        assert [(e["pid"], e["ticks"]) for e in recorded] == [(child.pid,
                                                              start_ticks(child.pid))]
        assert ask(child, "ping", timeout=0.3) is None  # it cannot answer while stopped
        assert freezer.thaw(child.pid).ok
        assert child.stdout is not None and child.stdout.readline() == "ok\n"  # the ping
        assert not stopped(child.pid)
        assert not journal.exists()
        assert not freezer.thaw(child.pid).ok  # not frozen any more: nothing to do
    finally:
        freezer.close()


def test_camguard_never_freezes_itself_its_parent_or_init(tmp_path: Path) -> None:
    freezer = JournaledFreezer(tmp_path / "frozen.json", eager=True)
    try:
        dog = freezer.watchdog_pid
        assert dog is not None
        for pid in (1, os.getpid(), os.getppid(), dog):
            assert not freezer.freeze(pid, ctime(pid)).ok
            assert not stopped(pid)
        assert freezer.freeze(2**22 + 7, 1.0).message == f"pid {2**22 + 7} has exited"
    finally:
        freezer.close()


def run_camguard_side(journal: Path, pid: int, limit: float, *extra: str
                      ) -> subprocess.Popen[str]:
    """camguard's side, frozen ``pid`` (the limit in seconds); ``extra``: a bundle."""
    side = subprocess.Popen([sys.executable, "-c", CAMGUARD_SIDE, str(journal), str(pid),
                             str(limit), str(REPO), *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert side.stdout is not None and side.stdout.readline() == "frozen\n"
    return side


def test_killing_camguard_continues_what_it_froze(child: subprocess.Popen[str],
                                                  tmp_path: Path) -> None:
    journal = tmp_path / "frozen.json"
    side = run_camguard_side(journal, child.pid, limit=600)
    try:
        wait_until(lambda: stopped(child.pid))  # SIGSTOP takes effect when it is scheduled
        side.kill()  # SIGKILL: no cleanup runs in camguard; the watchdog sees its pipe close
        side.wait()
        wait_until(lambda: not stopped(child.pid))
        assert ask(child, "ping") == "ok\n"
        wait_until(lambda: not journal.exists())
    finally:
        side.kill()
        side.wait()


def test_a_hung_camguard_still_lets_go_at_the_limit(child: subprocess.Popen[str],
                                                    tmp_path: Path) -> None:
    journal = tmp_path / "frozen.json"
    side = run_camguard_side(journal, child.pid, 0.5)
    try:
        wait_until(lambda: not stopped(child.pid))  # the watchdog continued it
        assert side.poll() is None  # camguard still runs (hung), so it was the watchdog
        assert ask(child, "ping") == "ok\n"
    finally:
        side.kill()
        side.wait()


def test_the_next_start_continues_a_journal_but_never_a_reused_pid(tmp_path: Path) -> None:
    journal = tmp_path / "frozen.json"
    ours, other = (subprocess.Popen(["sleep", "60"]) for _ in range(2))
    try:
        for p in (ours, other):
            os.kill(p.pid, signal.SIGSTOP)
            wait_until(lambda p=p: stopped(p.pid))  # type: ignore[misc]
        ticks = start_ticks(ours.pid)
        assert ticks is not None
        # ``other`` stands for a pid reused since: same pid, another start time.
        journal.write_text(json.dumps({"frozen": [
            {"pid": ours.pid, "ticks": ticks, "until": time.time() + 60},
            {"pid": other.pid, "ticks": ticks + 12345, "until": time.time() + 60}]}))
        assert sorted(thaw_recorded(journal)) == sorted([ours.pid, other.pid])
        wait_until(lambda: not stopped(ours.pid))
        assert stopped(other.pid)
        assert not journal.exists()
    finally:
        for p in (ours, other):
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait()


def test_a_new_freezer_continues_what_the_last_run_left(child: subprocess.Popen[str],
                                                       tmp_path: Path) -> None:
    """Both camguard and its watchdog were killed: the next start (app/ builds the freezer
    through the façade) continues what the journal lists."""
    journal = tmp_path / "frozen.json"
    side = run_camguard_side(journal, child.pid, limit=600)
    dog = [p for p in psutil_children(side.pid)]
    try:
        wait_until(lambda: stopped(child.pid))
        for pid in (*dog, side.pid):
            os.kill(pid, signal.SIGKILL)
        side.wait()
        assert stopped(child.pid) and journal.exists()
        again = current().freezer(journal)
        try:
            assert again.replayed == [child.pid]  # type: ignore[attr-defined]
            wait_until(lambda: not stopped(child.pid))
            assert not journal.exists()
        finally:
            again.close()
    finally:
        side.kill()
        side.wait()


def psutil_children(pid: int) -> list[int]:
    import psutil

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = [c.pid for c in psutil.Process(pid).children()]
        if kids:
            return kids
        time.sleep(0.01)
    raise AssertionError("no watchdog")


def test_the_watchdog_starts_from_the_bundle_as_its_own_command(
        child: subprocess.Popen[str], tmp_path: Path) -> None:
    """As the PyInstaller bundle: sys.frozen, and sys.executable is the camguard command;
    the watchdog is that command's hidden ``freeze-watchdog`` (no ``python -m``)."""
    bundle = tmp_path / "camguard"
    bundle.write_text(BUNDLE.format(repo=REPO, python=sys.executable))
    bundle.chmod(0o755)
    journal = tmp_path / "frozen.json"
    side = run_camguard_side(journal, child.pid, 600, str(bundle))
    try:
        [dog] = psutil_children(side.pid)
        wait_until(lambda: stopped(child.pid))
        import psutil

        wait_until(lambda: "freeze-watchdog" in psutil.Process(dog).cmdline())
        assert psutil.Process(dog).cmdline()[-2:] == ["freeze-watchdog", str(journal)]
        side.kill()
        side.wait()
        wait_until(lambda: not stopped(child.pid))  # the bundle's watchdog continued it
    finally:
        side.kill()
        side.wait()


def test_watchdog_argv_is_the_bundle_command_or_python_m(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    j = tmp_path / "frozen.json"
    assert watchdog_argv(j) == [sys.executable, "-m", "camguard", "freeze-watchdog", str(j)]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert watchdog_argv(j) == [sys.executable, "freeze-watchdog", str(j)]
    assert MAX_FREEZE == 120.0  # the one limit the journal's "until" is counted from


def test_the_opener_named_by_the_monitor_is_frozen(tmp_path: Path,
                                                   child: subprocess.Popen[str]) -> None:
    """The whole path: open() -> the monitor names the pid -> SIGSTOP."""
    node = make_standin(tmp_path / "dev" / "video0")
    freezer = JournaledFreezer(tmp_path / "frozen.json")
    src = ProcfsSource([str(node)], [], describer=ProcessDescriber())
    try:
        with watching([src]) as (monitor, rec):
            def freeze_opener(ev: MonitorEvent) -> None:
                if started(child.pid)(ev):
                    assert freezer.freeze(child.pid, ctime(child.pid)).ok

            monitor.add_sink(freeze_opener)
            assert child.stdin is not None
            child.stdin.write(f"open {node}\n")
            child.stdin.flush()
            rec.wait_for(started(child.pid))
            wait_until(lambda: stopped(child.pid))
            assert freezer.frozen == {child.pid}
    finally:
        freezer.close()
    assert not stopped(child.pid)


# -- why not hold the open() itself ----------------------------------------------------------
FAN_CLASS_CONTENT, FAN_CLOEXEC, FAN_REPORT_FID = 0x4, 0x1, 0x200
FAN_OPEN_PERM, FAN_MARK_ADD, FAN_ALLOW, FAN_DENY = 0x10000, 0x1, 0x1, 0x2
OPENER = """
import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_RDONLY)); print("opened")
except OSError as exc:
    print("refused", exc.errno)
"""


def permission_group() -> tuple[ctypes.CDLL, int]:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                                   ctypes.c_char_p]
    fd = libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, os.O_RDONLY | os.O_CLOEXEC)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    return libc, fd


def held_open(path: Path, answer: int) -> tuple[bool, str]:
    """Mark ``path`` for FAN_OPEN_PERM, let a child open it, answer; (held?, its result)."""
    libc, fan = permission_group()
    try:
        assert libc.fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN_PERM, -100,
                                  os.fsencode(path)) == 0
        opener = subprocess.Popen([sys.executable, "-c", OPENER, str(path)],
                                  stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([fan], [], [], 5.0)
        held = bool(ready)
        if held:
            data = os.read(fan, 4096)
            _len, _vers, _, _mlen, _mask, event_fd, pid = struct.unpack_from("=IBBHQii", data)
            assert pid == opener.pid
            assert opener.poll() is None  # waiting in open() for the answer
            os.write(fan, struct.pack("=iI", event_fd, answer))
            os.close(event_fd)
        out, _ = opener.communicate(timeout=10)
        return held, out.strip()
    finally:
        os.close(fan)  # closing the group answers "allow" to anything still waiting


def test_open_permission_events_hold_files_but_never_device_nodes(tmp_path: Path) -> None:
    """If this fails on a newer kernel because a device node's open() is held too, the
    freeze can move into the open() itself (see camguard/platform/linux/freeze.py)."""
    need_root()
    regular = tmp_path / "file"
    regular.write_text("x")
    assert held_open(regular, FAN_DENY) == (True, f"refused {1}")  # EPERM
    assert held_open(regular, FAN_ALLOW) == (True, "opened")
    node = make_standin(tmp_path / "video0")
    assert held_open(node, FAN_DENY) == (False, "opened")
    # ... and a group that names the file by handle, which does see device nodes, may not
    # use the permission classes.
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_REPORT_FID,
                              os.O_RDONLY) == -1
