"""Freeze while asking (core/freeze.py's bookkeeping over the platform's freezer, Linux's
journaled SIGSTOP/SIGCONT) against real child processes: stopped (/proc/PID/stat state T)
while the alert is open, continued on Allow, ended on Kill, never a reused pid, never a
protected process, never for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.decision import Choice
from camguard.core.freeze import MAX_FREEZE, FreezeWhileAsking, Thaw, freeze_refusal, thaw_for
from camguard.core.models import ProcessRef
from camguard.platform import current
from camguard.platform.base import ProcessFreezer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
DEADLINE = 10.0


def state(pid: int) -> str:
    stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
    return stat.rsplit(")", 1)[1].split()[0]


def wait_state(pid: int, wanted: str) -> str:
    """The process's state once it is ``wanted`` (or the last one seen at the deadline)."""
    end = time.monotonic() + DEADLINE
    got = state(pid)
    while got != wanted and time.monotonic() < end:
        time.sleep(0.01)
        got = state(pid)
    return got


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(DEADLINE)


def ref(proc: subprocess.Popen[bytes], create_time: float | None = None) -> ProcessRef:
    p = psutil.Process(proc.pid)
    return ProcessRef(proc.pid, p.create_time() if create_time is None else create_time,
                      name=p.name(), exe=p.exe())


@pytest.fixture
def freezer(tmp_path: Path) -> Iterator[ProcessFreezer]:
    f = current().freezer(tmp_path / "frozen.json")
    yield f
    f.close()


@pytest.fixture
def g(freezer: ProcessFreezer) -> FreezeWhileAsking:
    return FreezeWhileAsking(freezer, own_pid=os.getpid())


def test_frozen_while_asking_and_continued_on_allow(child: subprocess.Popen[bytes],
                                                    g: FreezeWhileAsking) -> None:
    shown = g.hold(1, ref(child))
    assert shown.ok, shown
    assert wait_state(child.pid, "T") == "T"
    assert g.frozen() == [ref(child)]
    done = g.release(1, Choice.ALLOW_ONCE.value)
    assert done is not None and done.ok
    assert wait_state(child.pid, "S") in ("S", "R")
    assert child.poll() is None and g.frozen() == []


def test_the_limit_is_the_freezers_and_its_deadline_is_known(
        child: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """The freezer's limit (injectable: a short one here) gives each hold its deadline,
    the one the alert shows; the watchdog continues the app by then, the alert open."""
    short = current().freezer(tmp_path / "short.json", limit=1.0)
    try:
        assert short.limit == 1.0
        g = FreezeWhileAsking(short, own_pid=os.getpid())
        before = time.time()
        assert g.hold(1, ref(child)).ok and g.paused_until(2) is None
        until = g.paused_until(1)
        assert until is not None and before + 1.0 <= until <= time.time() + 1.0
        assert wait_state(child.pid, "T") == "T"
        assert wait_state(child.pid, "S") in ("S", "R")  # the watchdog let it go
        assert g.is_frozen(1)  # the alert is still open: its answer is still awaited
    finally:
        short.close()
    assert current().freezer(tmp_path / "dflt.json").limit == MAX_FREEZE


def test_kill_ends_the_frozen_app_with_sigterm(child: subprocess.Popen[bytes],
                                               g: FreezeWhileAsking) -> None:
    g.hold(1, ref(child))
    assert wait_state(child.pid, "T") == "T"
    assert child.poll() is None
    result = g.release(1, Choice.KILL.value)
    assert result is not None and result.ok and "SIGTERM" in result.message
    assert child.wait(DEADLINE) == -signal.SIGTERM


def test_two_alerts_freeze_once_and_the_last_answer_continues(
        child: subprocess.Popen[bytes], g: FreezeWhileAsking) -> None:
    assert g.hold(1, ref(child)).message == f"paused pid {child.pid} while asking"
    assert g.hold(2, ref(child)).message == "already paused for another alert"
    assert g.release(1, Choice.ALLOW_ONCE.value) is None  # still asked about by alert 2
    assert wait_state(child.pid, "T") == "T"
    assert g.is_frozen(2) and not g.is_frozen(1)
    assert g.release(2, "ignore") is not None
    assert wait_state(child.pid, "S") in ("S", "R")


def test_a_reused_pid_is_never_signalled(child: subprocess.Popen[bytes],
                                         g: FreezeWhileAsking) -> None:
    stale = ref(child, psutil.Process(child.pid).create_time() - 30)
    result = g.hold(1, stale)
    assert result.outcome is Outcome.REFUSED
    assert "different process" in result.message
    assert state(child.pid) != "T" and g.frozen() == []
    assert g.release(1, Choice.KILL.value) is None  # nothing frozen, nothing ended
    assert child.poll() is None


def test_release_all_continues_everything_when_camguard_quits(
        child: subprocess.Popen[bytes], g: FreezeWhileAsking) -> None:
    g.hold(7, ref(child))
    assert wait_state(child.pid, "T") == "T"
    assert [r.ok for r in g.release_all()] == [True]
    assert wait_state(child.pid, "S") in ("S", "R")


def test_an_exited_app_is_not_found_not_a_crash(child: subprocess.Popen[bytes],
                                                g: FreezeWhileAsking) -> None:
    r = ref(child)
    g.hold(1, r)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(DEADLINE)
    result = g.release(1, Choice.ALLOW_ONCE.value)
    assert result is not None and result.outcome is Outcome.NOT_FOUND


@pytest.mark.parametrize(("process", "why"), [
    (None, "not known"),
    (ProcessRef(1, 5.0, name="systemd", exe="/usr/lib/systemd/systemd"), "kernel or the init"),
    (ProcessRef(4242, 0.0, name="zoom"), "no start time"),
    (ProcessRef(4242, 5.0, name="pipewire", exe="/usr/bin/pipewire"), "serves every app"),
    (ProcessRef(4242, 5.0, name="coreaudiod", exe="/usr/sbin/coreaudiod"), "serves every app"),
    (ProcessRef(4242, 5.0, name="svchost.exe", exe="C:\\Windows\\System32\\svchost.exe"),
     "serves every app"),
    (ProcessRef(4242, 5.0, name="Xorg", exe="/usr/lib/xorg/Xorg"), "serves every app"),
])
def test_what_is_never_frozen(process: ProcessRef | None, why: str) -> None:
    calls: list[tuple[int, float]] = []

    class Recording:
        limit = 120.0

        def freeze(self, pid: int, create_time: float) -> ActionResult:
            calls.append((pid, create_time))
            return ActionResult(Outcome.DONE, "froze")

        def thaw(self, pid: int, create_time: float, *, end: bool = False) -> ActionResult:
            calls.append((pid, create_time))
            return ActionResult(Outcome.DONE, "thawed")

        def close(self) -> None:
            pass

    g = FreezeWhileAsking(Recording(), own_pid=99)
    result = g.hold(1, process)
    assert result.outcome is Outcome.REFUSED and why in result.message
    assert calls == []
    assert freeze_refusal(ProcessRef(99, 5.0, name="camguard"), own_pid=99) == \
        "it is camguard itself"


def test_answers_map_to_continue_or_end() -> None:
    assert thaw_for(Choice.KILL.value) is Thaw.END
    for other in (Choice.ALLOW_ONCE.value, Choice.ALWAYS_ALLOW.value, Choice.BLOCK.value,
                  "ignore", None):
        assert thaw_for(other) is Thaw.CONTINUE
