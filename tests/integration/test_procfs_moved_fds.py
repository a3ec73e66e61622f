"""A camera fd that moves without an open (inherited by fork, passed over a unix socket) is
followed: the safety rescan reads only the known holders until one loses a node without a
close event, then sweeps every process's fd count (issue 16: flat idle cost while a camera is
held). Real processes, real fds, real SCM_RIGHTS; fanotify as root and inotify alone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.platform.linux import inotify
from camguard.platform.linux.holder_search import SWEEP_EVERY
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.conftest import make_standin
from tests.realenv import wait_until
from tests.watching import started, stopped, watching

# Commands on stdin: "fork" (a child inherits the open node and waits), "send" (the node's
# fd goes over a socket to a receiver forked before the open, so it inherited nothing),
# "close" (this process closes its own copy). Each answers one line: a pid or "ok".
MOVER = """
import os, signal, socket, sys
mine, theirs = socket.socketpair()
receiver = os.fork()
if receiver == 0:
    mine.close()
    msg, fds, _flags, _addr = socket.recv_fds(theirs, 16, 1)
    signal.pause()
theirs.close()
fd = os.open(sys.argv[1], os.O_RDONLY)
print("ready", receiver, flush=True)
for line in sys.stdin:
    word = line.strip()
    if word == "fork":
        child = os.fork()
        if child == 0:
            signal.pause()
        print(child, flush=True)
    elif word == "send":
        socket.send_fds(mine, [b"x"], [fd])
        print("ok", flush=True)
    elif word == "close":
        os.close(fd)
        print("ok", flush=True)
"""


class Mover:
    def __init__(self, node: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", MOVER, str(node)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.others: list[int] = []
        first = self.read().split()
        assert first[0] == "ready", first
        self.receiver = int(first[1])
        self.others.append(self.receiver)

    def read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def say(self, word: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        return self.read()

    def end(self) -> None:
        for pid in self.others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(params=["fanotify", "inotify"])
def path_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "inotify":  # as without privileges: nobody names the opener
        monkeypatch.setattr(inotify, "open_reader", lambda: None)
    return str(request.param)


@pytest.fixture
def mover(devdir: Path) -> Iterator[Mover]:
    m = Mover(make_standin(devdir / "video0"))
    yield m
    m.end()


def test_a_forked_child_keeps_the_camera_after_its_parent_closes(
        devdir: Path, mover: Mover, path_kind: str) -> None:
    src = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    # A long rescan period: the child must be found at the first rescan after the
    # parent's silent close, not by the every-SWEEP_EVERY sweep.
    with watching([src], rescan_interval=0.5) as (monitor, rec):
        wait_until(lambda: monitor.state.devices != (), 5, "the first look")
        rec.wait_for(started(mover.proc.pid))
        child = int(mover.say("fork"))
        mover.others.append(child)
        assert mover.say("close") == "ok"  # no close event: the child still holds it
        rec.wait_for(stopped(mover.proc.pid), timeout=0.5 * (SWEEP_EVERY - 2))
        rec.wait_for(started(child), timeout=0.5 * (SWEEP_EVERY - 2))


def test_a_passed_fd_is_followed_once_the_sender_closes(
        devdir: Path, mover: Mover, path_kind: str) -> None:
    src = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    with watching([src], rescan_interval=0.5) as (monitor, rec):
        wait_until(lambda: monitor.state.devices != (), 5, "the first look")
        rec.wait_for(started(mover.proc.pid))
        assert mover.say("send") == "ok"
        assert mover.say("close") == "ok"
        rec.wait_for(stopped(mover.proc.pid), timeout=0.5 * (SWEEP_EVERY - 2))
        rec.wait_for(started(mover.receiver), timeout=0.5 * (SWEEP_EVERY - 2))


def test_a_passed_fd_is_found_by_the_periodic_sweep_while_the_sender_holds(
        devdir: Path, mover: Mover, path_kind: str) -> None:
    src = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    with watching([src], rescan_interval=0.05) as (monitor, rec):
        wait_until(lambda: monitor.state.devices != (), 5, "the first look")
        rec.wait_for(started(mover.proc.pid))
        assert mover.say("send") == "ok"
        # Both hold it now; only the sweep (every SWEEP_EVERY-th rescan) can know.
        rec.wait_for(started(mover.receiver), timeout=20)
        assert not [e for e in rec.events if stopped(mover.proc.pid)(e)]
