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

from camguard.core.models import MonitorEvent
from camguard.platform.linux.freeze import Freezer, start_ticks, state_of, thaw_recorded
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
# argv[2] and says so, then waits for stdin to close. With argv[5] == "hung" its own
# timers never fire (a camguard that hangs): only the watchdog can let go then.
CAMGUARD_SIDE = """
import sys
sys.path.insert(0, sys.argv[4])
from pathlib import Path
from camguard.platform.linux import freeze
from camguard.platform.linux.freeze import Freezer
if sys.argv[5:] == ["hung"]:
    class Never:
        def __init__(self, *args): self.daemon = True
        def start(self): pass
        def cancel(self): pass
    freeze.threading.Timer = Never
freezer = Freezer(Path(sys.argv[1]), limit=float(sys.argv[3]))
print(freezer.freeze(int(sys.argv[2])) or "frozen", flush=True)
sys.stdin.read()
"""


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.01)


def stopped(pid: int) -> bool:
    return state_of(pid) == "T"


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
    freezer = Freezer(journal)
    try:
        assert ask(child, "ping") == "ok\n"
        assert freezer.freeze(child.pid) is None
        wait_until(lambda: stopped(child.pid))  # SIGSTOP takes effect when it is scheduled
        recorded = json.loads(journal.read_text())["frozen"]
        assert [(e["pid"], e["ticks"]) for e in recorded] == [(child.pid,
                                                              start_ticks(child.pid))]
        assert ask(child, "ping", timeout=0.3) is None  # it cannot answer while stopped
        assert freezer.thaw(child.pid)
        assert child.stdout is not None and child.stdout.readline() == "ok\n"  # the ping
        assert not stopped(child.pid)
        assert not journal.exists()
        assert not freezer.thaw(child.pid)  # not frozen any more: nothing to do
    finally:
        freezer.close()


def test_camguard_never_freezes_itself_its_parent_or_init(tmp_path: Path) -> None:
    freezer = Freezer(tmp_path / "frozen.json")
    try:
        for pid in (1, os.getpid(), os.getppid()):
            assert freezer.freeze(pid) is not None
            assert not stopped(pid)
        assert freezer.freeze(2**22 + 7) == "the process is gone"
    finally:
        freezer.close()


def run_camguard_side(journal: Path, pid: int, limit: float, *extra: str
                      ) -> subprocess.Popen[str]:
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
    side = run_camguard_side(journal, child.pid, 0.5, "hung")
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


def test_the_opener_named_by_the_monitor_is_frozen(tmp_path: Path,
                                                   child: subprocess.Popen[str]) -> None:
    """The whole path: open() -> the monitor names the pid -> SIGSTOP."""
    node = make_standin(tmp_path / "dev" / "video0")
    freezer = Freezer(tmp_path / "frozen.json")
    src = ProcfsSource([str(node)], [], describer=ProcessDescriber())
    try:
        with watching([src]) as (monitor, rec):
            def freeze_opener(ev: MonitorEvent) -> None:
                if started(child.pid)(ev):
                    assert freezer.freeze(child.pid) is None

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
