"""Unprivileged detection of a holder camguard cannot see, against inotify's merged events.

camguard runs as an ordinary account (it cannot read other accounts' fd tables); the hidden
holder is ``nobody``. inotify coalesces identical back-to-back events (inotify(7)), so two
opens in a row count as one and two closes in a row as one: the hidden-holder signal must not
trust that count. Each check drives the real source step by step (its inotify thread runs;
the looks are called by the script) so "nothing is reported" is a decision, not a wait.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_standin, need_root, nobody_python
from tests.service_env import Accounts

# Runs as the unprivileged account. Commands on stdin, one JSON answer per line.
WATCHER = """
import json, os, sys, threading, time
sys.path[:0] = sys.argv[2:]
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
node = sys.argv[1]
src = ProcfsSource([node], [], describer=ProcessDescriber())
woke = threading.Event()
src.start(woke.set)

def settle():
    # Look until no decision waits (each look says when to look again), with a deadline.
    deadline = time.monotonic() + 10
    while True:
        snap = src.snapshot()
        if snap.recheck_in is None or time.monotonic() > deadline:
            return snap
        time.sleep(snap.recheck_in)

def users(snap):
    return sorted([u.process.pid if u.process else None for u in snap.usages],
                  key=lambda p: -1 if p is None else p)

settle()
print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    if line.strip() == "arm":
        woke.clear()
        print(json.dumps("armed"), flush=True)
    elif line.strip() == "check":
        if not woke.wait(10):        # the inotify thread has read the event(s)
            print(json.dumps("no event"), flush=True)
        else:
            print(json.dumps(users(settle())), flush=True)
src.stop()
"""

# An opener: as the watcher's own account (visible) or as nobody (hidden).
OPENER = """
import os, sys
fds = []
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "open":
        fds.append(os.open(sys.argv[1], os.O_RDONLY))
    elif cmd == "open2":
        fds += [os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[1], os.O_RDONLY)]
    elif cmd == "close1":
        os.close(fds.pop())
    elif cmd == "close-all":
        while fds:
            os.close(fds.pop())
    print("done", flush=True)
"""


class Child:
    """A script run under a setpriv prefix, spoken to one line at a time."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd="/")

    @property
    def pid(self) -> int:
        return self.proc.pid  # setpriv execs python: the same pid

    def read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "ended"
        return line

    def ask(self, cmd: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read()

    def end(self) -> None:
        # SIGTERM first: under `make coverage` the account's python then writes what it
        # measured; SIGKILL only for one still there after 10 s.
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Watcher(Child):
    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        assert json.loads(self.read()) == "ready"

    def check(self, act: Callable[[], None]) -> Any:
        """Do ``act`` while the watcher is stopped (SIGSTOP), so every event it causes is
        queued unread and identical ones are merged, as under load; then its verdict."""
        assert json.loads(self.ask("arm")) == "armed"
        os.kill(self.pid, signal.SIGSTOP)
        try:
            act()
        finally:
            os.kill(self.pid, signal.SIGCONT)
        return json.loads(self.ask("check"))


def as_account(folder: Path, uid: int, gid: int) -> tuple[list[str], list[str]]:
    """Like nobody_python, for another account: the setpriv prefix and the import paths."""
    run_as_nobody, paths = nobody_python(folder)
    argv = [a.replace("65534", str(uid)) if a.startswith("--reuid") else
            a.replace("65534", str(gid)) if a.startswith("--regid") else a
            for a in run_as_nobody]
    return argv, paths


@pytest.fixture
def opendir() -> Iterator[Path]:
    """A folder every account can walk, outside /tmp/pytest-of-root (which a pytest run
    started meanwhile by someone else on this machine makes 0700 again)."""
    d = Path(tempfile.mkdtemp(prefix="camguard-hidden-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start(devdir: Path, accounts: Accounts) -> tuple[Watcher, Child, Child]:
    """The watcher and a visible opener as a fresh account, a hidden opener as nobody;
    the openers start first, so their fd counts before any open are on record."""
    need_root()
    cam = make_standin(devdir / "video0")  # mode 0666: every account may open it
    user = accounts.user()
    prefix, paths = as_account(devdir, user.uid, user.gid)
    run_as_nobody, _ = nobody_python(devdir)
    visible = Child([*prefix, "-c", OPENER, str(cam)])
    hidden = Child([*run_as_nobody, "-c", OPENER, str(cam)])
    # Started, not only spawned: an opener still starting up (its imports open files) when
    # the watcher takes its base would later pass for a holder of fewer files than it opens.
    for opener in (visible, hidden):
        assert opener.ask("started?") == "done\n"
    return Watcher([*prefix, "-c", WATCHER, str(cam), *paths]), visible, hidden


def test_no_phantom_holder_when_every_opener_is_visible(opendir: Path, accounts: Accounts
                                                        ) -> None:
    """Two fds opened one at a time, closed back to back: inotify merges the two closes into
    one, so opens minus closes says 1 while nothing is open. Nothing may be reported."""
    watcher, visible, hidden = start(opendir, accounts)
    try:
        assert watcher.check(lambda: visible.ask("open")) == [visible.pid]
        assert watcher.check(lambda: visible.ask("open")) == [visible.pid]
        assert watcher.check(lambda: visible.ask("close-all")) == []
    finally:
        for c in (watcher, visible, hidden):
            c.end()


def test_hidden_holder_opening_twice_and_closing_once_is_still_reported(
        opendir: Path, accounts: Accounts) -> None:
    """nobody opens the node twice (one merged IN_OPEN), then closes once: it still holds
    it, and camguard says so. (When it ends is decided by fd counts that other accounts'
    processes on this shared machine also move: tests/unit/test_hidden.py.)"""
    watcher, visible, hidden = start(opendir, accounts)
    try:
        assert watcher.check(lambda: hidden.ask("open2")) == [None]
        assert watcher.check(lambda: hidden.ask("close1")) == [None]
        # And a visible opener meanwhile is named, the hidden one still reported.
        assert watcher.check(lambda: visible.ask("open")) == [None, visible.pid]
        assert watcher.check(lambda: visible.ask("close-all")) == [None]
    finally:
        for c in (watcher, visible, hidden):
            c.end()
