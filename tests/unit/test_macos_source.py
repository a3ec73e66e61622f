"""The macOS usage source end to end on Linux: a real ``log stream`` stand-in child process
printing constructed ndjson lines through a real pipe, recorded HAL trees (FakeHal), and a
real process as the camera's owner."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from camguard.platform.macos import hal
from camguard.platform.macos.logparse import MAX_LINE, plan_for
from camguard.platform.macos.logstream import LogStreamReader
from camguard.platform.macos.source import MacSource
from camguard.platform.process import ProcessDescriber
from tests.fakes import FakeFoundation, FakeHal
from tests.realenv import wait_until

DATA = Path(__file__).parent.parent / "data" / "macos"
SYS = hal.SYSTEM_OBJECT


def endpoint_line(pid: int) -> str:
    """The macOS 14 "added endpoint" line of log-14.json, naming ``pid``."""
    line = json.loads(json.loads((DATA / "log-14.json").read_text())["cases"][1]["ndjson"])
    line["eventMessage"] = line["eventMessage"].replace("{private}901]", f"{{private}}{pid}]")
    return json.dumps(line)


def printer(tmp_path: Path, lines: list[str], *, then_wait: bool = True) -> list[str]:
    """argv of a child that prints ``lines`` and then waits for SIGTERM, as log stream does."""
    data = tmp_path / "capture.ndjson"
    data.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    tail = "import signal; signal.pause()" if then_wait else "pass"
    return [sys.executable, "-c", f"import sys; sys.stdout.write(open({str(data)!r}).read()); "
            f"sys.stdout.flush(); {tail}"]


def trees(camera_running: int = 1) -> tuple[FakeHal, FakeHal]:
    audio, cmio = FakeHal(), FakeHal()
    audio.set(SYS, hal.DEVICES, [])
    audio.set(SYS, hal.PROCESS_OBJECTS, [])
    cmio.set(SYS, hal.DEVICES, [30])
    cmio.set(30, hal.DEVICE_UID, "cam-uid")
    cmio.set(30, hal.NAME, "FaceTime HD Camera")
    cmio.set(30, hal.RUNNING_SOMEWHERE, camera_running)
    return audio, cmio


@pytest.fixture
def owner() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    yield proc
    proc.kill()
    proc.wait()


def test_the_log_names_a_real_process_as_the_camera_owner(
        tmp_path: Path, owner: subprocess.Popen[bytes]) -> None:
    audio, cmio = trees()
    argv = printer(tmp_path, ["Filtering the log data using ...", "x" * (MAX_LINE + 10),
                              endpoint_line(owner.pid)])
    source = MacSource((14, 5), audio, cmio, ProcessDescriber().describe, log_argv=argv,
                       poll=0.05)
    woke = threading.Event()
    source.start(woke.set)
    try:
        wait_until(lambda: any(u.process is not None for u in source.snapshot().usages),
                   10, "the log line to name the owner")
        snap = source.snapshot()
        (usage,) = snap.usages
        assert usage.process is not None and usage.process.pid == owner.pid
        assert usage.process.create_time == psutil.Process(owner.pid).create_time()
        assert usage.device.id == "cmio:cam-uid" and usage.via == "log"
        assert "cmio-endpoint (medium)" in usage.note and snap.degraded is None
        woke.clear()
        assert cmio.fire(30, hal.RUNNING_SOMEWHERE) == 1 and woke.is_set()
    finally:
        source.stop()
    assert cmio.listeners == {} and audio.listeners == {}


def test_stop_ends_the_log_child(tmp_path: Path) -> None:
    got: list[object] = []
    plan = plan_for((14, 5))
    assert plan is not None
    reader = LogStreamReader(plan, got.append, printer(tmp_path, [endpoint_line(4242)]))
    reader.start()
    wait_until(lambda: len(got) == 1, 10, "the line to be read")
    child = reader._proc
    assert child is not None and child.poll() is None
    reader.stop()
    assert child.returncode == -signal.SIGTERM and not reader.running and reader.error == ""


def test_a_log_stream_that_cannot_start_or_ends_makes_the_source_degraded(
        tmp_path: Path) -> None:
    audio, cmio = trees()
    missing = MacSource((14, 5), audio, cmio, ProcessDescriber().describe,
                        log_argv=[str(tmp_path / "no-such-log")], poll=0.05)
    missing.start(lambda: None)
    try:
        degraded = missing.snapshot().degraded
        assert degraded is not None and "cannot run" in degraded.reason
    finally:
        missing.stop()
    ended = MacSource((14, 5), audio, cmio, ProcessDescriber().describe,
                      log_argv=printer(tmp_path, [], then_wait=False), poll=0.05)
    ended.start(lambda: None)
    try:
        wait_until(lambda: ended.snapshot().degraded is not None, 10, "the end to be seen")
        reason = ended.snapshot().degraded.reason  # type: ignore[union-attr]
        assert "ended (exit status 0)" in reason and "camera owners are unknown" in reason
    finally:
        ended.stop()


def test_unknown_version_and_hal_errors_say_why() -> None:
    audio, cmio = trees()
    old = MacSource((10, 15), audio, cmio, ProcessDescriber().describe)
    snap = old.snapshot()
    assert snap.degraded is not None and "no unified-log format" in snap.degraded.reason
    assert [u.note for u in snap.usages] == ["unknown (macOS 10.15 log format not recognised)"]
    cmio.fail[(30, hal.RUNNING_SOMEWHERE)] = -50
    broken = MacSource((14, 5), audio, cmio, ProcessDescriber().describe).snapshot()
    assert broken.usages == frozenset() and broken.degraded is not None
    assert "OSStatus -50" in broken.degraded.reason


def test_the_watcher_thread_turns_a_run_loop_and_wakes(monkeypatch: pytest.MonkeyPatch) -> None:
    foundation = FakeFoundation()
    monkeypatch.setitem(sys.modules, "Foundation", foundation.module)
    audio, cmio = trees(camera_running=0)
    source = MacSource(None, audio, cmio, ProcessDescriber().describe, poll=0.01)
    wakes: list[int] = []
    source.start(lambda: wakes.append(1))
    try:
        wait_until(lambda: len(wakes) >= 2 and foundation.turns >= 2, 10, "polls")
    finally:
        source.stop()


def test_a_one_shot_look_says_the_log_is_read_only_while_watching(tmp_path: Path) -> None:
    """camguard status looks once: no log line can arrive, so no waiting and no claim that
    the format was not recognised."""
    audio, cmio = trees()
    source = MacSource((14, 5), audio, cmio, ProcessDescriber().describe)
    snap = source.snapshot()
    assert snap.recheck_in is None
    assert [u.note for u in snap.usages] == [
        "unknown (camguard reads the unified log only while it watches: the tray or "
        "camguard watch)"]
    broken = MacSource((14, 5), audio, cmio, ProcessDescriber().describe,
                       log_argv=[str(tmp_path / "no-such-log")])
    broken.start(lambda: None)
    try:
        assert [u.note for u in broken.snapshot().usages] == [
            "unknown (the unified log cannot be read)"]
    finally:
        broken.stop()


def test_a_camera_plugged_in_later_is_listened_to(tmp_path: Path) -> None:
    audio, cmio = trees(camera_running=0)
    source = MacSource((14, 5), audio, cmio, ProcessDescriber().describe,
                       log_argv=printer(tmp_path, []), poll=60)
    woke = threading.Event()
    source.start(woke.set)
    try:
        cmio.set(SYS, hal.DEVICES, [30, 31])  # plugged in: the HAL fires the device list
        cmio.set(31, hal.RUNNING_SOMEWHERE, 0)
        assert cmio.fire(SYS, hal.DEVICES) == 1 and woke.is_set()
        assert cmio.fire(31, hal.RUNNING_SOMEWHERE) == 0  # not yet: nobody looked again
        source.snapshot()  # the monitor looks, as the wake-up asked
        woke.clear()
        cmio.set(31, hal.RUNNING_SOMEWHERE, 1)
        assert cmio.fire(31, hal.RUNNING_SOMEWHERE) == 1 and woke.is_set()
        source.snapshot()
        assert cmio.fire(31, hal.RUNNING_SOMEWHERE) == 1  # listened to once, not per look
    finally:
        source.stop()
    assert cmio.listeners == {}


def test_the_monitor_reports_the_owner_once_the_log_line_arrives(
        tmp_path: Path, owner: subprocess.Popen[bytes]) -> None:
    """Camera on first, log line later (as on a Mac): the monitor is asked to look again
    and its first event names the real owner. The source's clock stands still, so the wait
    for the line never runs out however slow this machine is."""
    import os

    from camguard.core.models import EventType, MonitorEvent, UsageEvent
    from camguard.monitor import Monitor
    from camguard.platform.clock import SystemClock

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    data = tmp_path / "capture.ndjson"
    data.write_text(endpoint_line(owner.pid) + "\n", encoding="utf-8")
    argv = [sys.executable, "-c", f"import sys, signal; open({str(gate)!r}).read(); "
            f"sys.stdout.write(open({str(data)!r}).read()); sys.stdout.flush(); signal.pause()"]
    audio, cmio = trees(camera_running=0)
    source = MacSource((14, 5), audio, cmio, ProcessDescriber().describe, clock=lambda: 0.0,
                       log_argv=argv, poll=60)
    events: list[MonitorEvent] = []
    monitor = Monitor([source], SystemClock(), settle=0.002)
    monitor.add_sink(events.append)
    monitor.start()
    try:
        cmio.set(30, hal.RUNNING_SOMEWHERE, 1)
        cmio.fire(30, hal.RUNNING_SOMEWHERE)
        wait_until(lambda: source.snapshot().recheck_in is not None, 10, "the camera to run")
        with open(gate, "w") as release:
            release.write("go")
        wait_until(lambda: any(isinstance(e, UsageEvent) for e in events), 10, "an event")
    finally:
        monitor.stop()
        source.stop()
    started = [e for e in events if isinstance(e, UsageEvent) and e.type is EventType.STARTED]
    assert started and started[0].usage.process is not None
    assert started[0].usage.process.pid == owner.pid
