"""Hooks: real scripts get the right arguments, hang and get killed, and never block."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import psutil
import pytest

from camguard.core.clock import FrozenClock
from camguard.core.models import Device, DeviceKind, EventType, ProcessRef, Usage, UsageEvent
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.hooks import HookConfig, HookResult, HookRunner
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from camguard.store.eventlog import EventLog, JsonLinesFile
from tests.conftest import Holder, make_standin
from tests.realenv import wait_until

CAM = Device(DeviceKind.CAMERA, "/dev/video0", "Integrated Camera", "/dev/video0", "procfs")
ZOOM = ProcessRef(1234, 1.5, "zoom", "/opt/zoom/zoom", ("zoom",), "alice")


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def recorder(tmp_path: Path) -> str:
    """A hook that writes its arguments (NUL-separated) and CAMGUARD_EVENT to files."""
    return script(tmp_path / "hook.sh", f"""
n=$(ls {tmp_path}/args.* 2>/dev/null | wc -l)
printf '%s\\0' "$@" > {tmp_path}/args.$n
printf '%s' "$CAMGUARD_EVENT" > {tmp_path}/event.$n
""")


def calls(tmp_path: Path) -> list[list[bytes]]:
    files = sorted(tmp_path.glob("args.*"), key=lambda p: int(p.suffix[1:]))
    return [f.read_bytes().split(b"\0")[:-1] for f in files]


@pytest.fixture
def runners() -> list[HookRunner]:
    made: list[HookRunner] = []
    yield made  # type: ignore[misc]
    for r in made:
        r.stop(30)


def test_hook_gets_event_device_pid_exe_user(tmp_path: Path, runners: list[HookRunner]
                                             ) -> None:
    runner = HookRunner(HookConfig(recorder(tmp_path)))
    runners.append(runner)
    runner.start()
    log = EventLog(FrozenClock(), [], host="h", user="camguard-user")
    log.add_listener(runner.handle)  # how the app wires it: every event, filtered by type
    hostile = ProcessRef(7, 1.0, "x", "/tmp/\udcfe bin;rm -rf ~", (), "mallory")
    log.monitor_sink(UsageEvent(EventType.STARTED, Usage(CAM, ZOOM), 1.0))
    log.emit("block.on", kind="camera", result="done")  # not in hook_events: no run
    log.monitor_sink(UsageEvent(EventType.STOPPED, Usage(CAM, hostile), 2.0, 1.0))
    log.monitor_sink(UsageEvent(EventType.STARTED, Usage(CAM, None), 3.0))
    assert runner.wait_idle(30)
    assert calls(tmp_path) == [
        [b"device.started", b"/dev/video0", b"1234", b"/opt/zoom/zoom", b"alice"],
        # As the event log has it (an undecodable byte as the text \xfe); no shell saw it.
        [b"device.stopped", b"/dev/video0", b"7", b"/tmp/\\xfe bin;rm -rf ~", b"mallory"],
        # A process camguard cannot see: empty pid and exe; the user camguard runs as.
        [b"device.started", b"/dev/video0", b"", b"", b"camguard-user"],
    ]
    event = json.loads((tmp_path / "event.0").read_text())
    assert event["type"] == "device.started" and event["name"] == "zoom"
    assert runner.ran == 3 and runner.dropped == 0


def test_a_hanging_hook_and_its_child_are_killed(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # Ignoring SIGTERM (inherited by its children too) forces the SIGKILL step.
    hook = script(tmp_path / "hang.sh", f"""
trap '' TERM
echo "about to hang"
sleep 1000 &
echo $! > {tmp_path}/child
echo $$ > {tmp_path}/pid
while :; do sleep 1; done
""")
    runner = HookRunner(HookConfig(hook, timeout=1.0))
    with caplog.at_level(logging.INFO):
        result = runner.run_once({"type": "device.started", "device": "/dev/video0",
                                  "pid": 1, "exe": "/x", "process_user": "u"})
    assert result.timed_out and not result.ok
    assert result.output == "about to hang\n"
    pids = [int((tmp_path / n).read_text()) for n in ("pid", "child")]

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(lambda: all(gone(p) for p in pids), 10, "the hook and its child to die")
    assert "killed after 1.0 s" in caplog.text and "about to hang" in caplog.text


def test_the_queue_is_bounded_and_drops_are_logged(tmp_path: Path, runners: list[HookRunner],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    go = tmp_path / "go"
    hook = script(tmp_path / "slow.sh", f"""
touch {tmp_path}/started.$3
while [ ! -e {go} ]; do sleep 0.02; done
""")
    runner = HookRunner(HookConfig(hook, timeout=60, queue_size=2))
    runners.append(runner)
    runner.start()

    def event(n: int) -> dict[str, object]:
        return {"type": "device.started", "device": "/dev/video0", "pid": n}

    assert runner.handle(event(0))
    wait_until((tmp_path / "started.0").exists, 10, "the first hook to run")
    # The worker is busy: two fit in the queue, the rest are dropped, and nothing blocks.
    accepted = [runner.handle(event(n)) for n in range(1, 10)]
    assert accepted == [True, True] + [False] * 7
    assert runner.dropped == 7
    assert caplog.text.count("hook queue full") == 7
    go.touch()
    assert runner.wait_idle(30)
    assert runner.ran == 3
    assert sorted(p.name for p in tmp_path.glob("started.*")) == [
        "started.0", "started.1", "started.2"]


def test_output_and_exit_code_are_captured_and_reported(
        tmp_path: Path, runners: list[HookRunner], caplog: pytest.LogCaptureFixture) -> None:
    hook = script(tmp_path / "fail.sh", 'echo "hello from hook"; echo "oops" >&2; exit 3\n')
    results: list[HookResult] = []
    runner = HookRunner(HookConfig(hook, events=frozenset()), on_result=results.append)
    runners.append(runner)
    runner.start()
    with caplog.at_level(logging.INFO):
        assert runner.handle({"type": "block.on", "kind": "camera", "user": "alice"})
        # A hook's own failure never runs the hook (it would feed itself).
        assert not runner.handle({"type": "hook.failed"})
        assert runner.wait_idle(30)
    (result,) = results
    assert result.returncode == 3 and not result.timed_out and not result.ok
    assert result.argv[1:] == ("block.on", "camera", "", "", "alice")
    assert result.output == "hello from hook\noops\n"
    assert "exited with 3" in caplog.text and "hello from hook\\noops" in caplog.text


def test_a_missing_program_is_logged_and_the_worker_goes_on(
        tmp_path: Path, runners: list[HookRunner], caplog: pytest.LogCaptureFixture) -> None:
    results: list[HookResult] = []
    runner = HookRunner(HookConfig(str(tmp_path / "nope")), on_result=results.append)
    runners.append(runner)
    runner.start()
    runner.handle({"type": "device.started"})
    runner.handle({"type": "device.stopped"})
    assert runner.wait_idle(30)
    assert [r.returncode for r in results] == [None, None]
    assert "No such file" in results[0].error and "cannot run hook" in caplog.text


@pytest.mark.parametrize("program", ["hook.sh", "", "./hook.sh", "bin/hook", "/x\x00y"])
def test_only_absolute_programs(program: str) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        HookConfig(program)


@pytest.mark.parametrize(("kw", "message"), [({"timeout": 0}, "timeout"),
                                             ({"queue_size": 0}, "queue")])
def test_bad_limits(kw: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HookConfig("/bin/true", **kw)  # type: ignore[arg-type]


def test_environment_carries_the_event(tmp_path: Path) -> None:
    out = tmp_path / "env"
    hook = script(tmp_path / "env.sh", f'env > {out}\n')
    runner = HookRunner(HookConfig(hook), env={"PATH": os.environ.get("PATH", ""), "A": "1"})
    result = runner.run_once({"type": "device.started", "cmdline": ["x" * 100_000]})
    assert result.ok
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["A"] == "1"
    # Too big for the environment: a short stand-in says so instead of failing the exec.
    assert json.loads(env["CAMGUARD_EVENT"]) == {"type": "device.started", "truncated": True}


def test_end_to_end_a_real_process_opens_a_camera(tmp_path: Path, devdir: Path,
                                                  holders: list[Holder],
                                                  runners: list[HookRunner]) -> None:
    """A real child opens a real node: the monitor sees it, the event log writes it, the
    hook runs with its pid and executable."""
    cam = make_standin(devdir / "video0")
    hooked = tmp_path / "hooked"
    hooked.mkdir()
    runner = HookRunner(HookConfig(recorder(hooked)))
    runners.append(runner)
    runner.start()
    path = tmp_path / "events.jsonl"
    log = EventLog(SystemClock(), [JsonLinesFile(path)])
    log.add_listener(runner.handle)
    src = ProcfsSource([f"{devdir}/video*"], [f"{devdir}/snd/pcmC*D*c"],
                       describer=ProcessDescriber())
    monitor = Monitor([src], SystemClock(), settle=0.002)
    monitor.add_sink(log.monitor_sink)
    monitor.start()
    try:
        holder = Holder([cam])
        holders.append(holder)
        wait_until(lambda: len(calls(hooked)) == 1, 20, "the hook for device.started")
        holder.close()
        wait_until(lambda: len(calls(hooked)) == 2, 20, "the hook for device.stopped")
    finally:
        monitor.stop()
    exe = psutil.Process(holder.pid).exe().encode()
    user = psutil.Process(holder.pid).username().encode()
    assert calls(hooked) == [[b"device.started", str(cam).encode(), str(holder.pid).encode(),
                              exe, user],
                             [b"device.stopped", str(cam).encode(), str(holder.pid).encode(),
                              exe, user]]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["type"], r["pid"]) for r in records] == [
        ("device.started", holder.pid), ("device.stopped", holder.pid)]
