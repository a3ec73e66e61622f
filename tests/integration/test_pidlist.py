"""The pid list an unprivileged search walks: extended by the kernel's pid cursor between
listings of /proc, newest first, and listed again whenever the cursor cannot be trusted."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.platform.linux import pidlist
from camguard.platform.linux.fdscan import ProcUnreadableError
from camguard.platform.linux.pidlist import PidList


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def sleeper(procs: list[subprocess.Popen[bytes]]) -> int:
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    return p.pid


def test_a_process_started_after_the_listing_is_found_without_listing_again(
        spawn: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch) -> None:
    pids = PidList()
    before, new = pids.fresh()
    assert os.getpid() in before and not new  # a listing does not say what is new
    listings: list[str] = []
    real = os.listdir
    monkeypatch.setattr(pidlist.os, "listdir", lambda p: listings.append(p) or real(p))
    a, b = sleeper(spawn), sleeper(spawn)
    order, new = pids.current()
    assert pids.last == "extended" and not listings
    assert {a, b} <= new and {a, b} <= set(order)
    assert os.getpid() not in new
    # Newest first: the sleepers come before this (older) process, the later one first.
    assert order.index(b) < order.index(a) < order.index(os.getpid())
    again, new = pids.current()
    assert a not in new and a in again  # new since the last call only


def test_a_threads_id_is_not_a_process(spawn: list[subprocess.Popen[bytes]]) -> None:
    pids = PidList()
    pids.fresh()
    started, done, tids = threading.Event(), threading.Event(), []

    def run() -> None:
        tids.append(threading.get_native_id())
        started.set()
        done.wait()

    t = threading.Thread(target=run)
    t.start()
    try:
        assert started.wait(10)
        a = sleeper(spawn)  # made after the thread: the cursor passed the thread's id
        order, new = pids.current()
        assert pids.last == "extended" and a in new
        assert tids[0] not in new and tids[0] not in order
    finally:
        done.set()
        t.join()


def test_the_list_is_listed_again_when_too_many_processes_were_made(
        spawn: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch) -> None:
    pids = PidList()
    pids.fresh()
    monkeypatch.setattr(pidlist, "MAX_NEW", 0)
    a = sleeper(spawn)
    order, new = pids.current()
    assert pids.last == "listed" and a in order and not new


def test_an_old_list_is_listed_again(spawn: list[subprocess.Popen[bytes]],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pids = PidList()
    pids.fresh()
    monkeypatch.setattr(pidlist, "MAX_AGE", -1.0)
    a = sleeper(spawn)
    assert a in pids.current()[0] and pids.last == "listed"


def test_another_proc_root_is_always_listed(tmp_path: Path) -> None:
    for pid in (7, 300, 42):
        (tmp_path / str(pid)).mkdir()
    (tmp_path / "self").mkdir()
    pids = PidList(str(tmp_path))
    assert pids.current() == ([300, 42, 7], set()) and pids.last == "listed"
    (tmp_path / "8").mkdir()
    assert pids.current()[0] == [300, 42, 8, 7] and pids.last == "listed"


def test_an_unlistable_proc_root_says_so(tmp_path: Path) -> None:
    with pytest.raises(ProcUnreadableError):
        PidList(str(tmp_path / "none")).current()
