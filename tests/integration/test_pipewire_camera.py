"""The PipeWire source against a real PipeWire 0.3.65 with real video: a GStreamer
videotestsrc offered as a Video/Source node is the camera, a GStreamer pipewiresrc linked to
it is the app (tests/pwvideo.py). The consumer, named by the kernel-given pid, is the user;
the broker never is; a node nobody watches is no use; killing the consumer ends the use."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.coverage import CoverageState
from camguard.core.models import DeviceKind, EventType, MonitorEvent, SourceSnapshot, UsageEvent
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.pipewire import UNREACHABLE, PipeWireSource
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests import pwvideo
from tests.conftest import Holder, make_standin, need, need_tools
from tests.realenv import PW_TOOLS, SoundServer, start_pipewire, wait_until


@pytest.fixture
def gst() -> None:
    need_tools(pwvideo.GST_TOOLS)
    need(pwvideo.has_pipewire_gst(), f"pipewiresink missing: apt-get install "
                                     f"{pwvideo.GST_PACKAGES}")


@pytest.fixture
def video(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """GStreamer processes of one test, killed after it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        pwvideo.end(proc)


@pytest.fixture
def sources() -> Iterator[list[PipeWireSource]]:
    made: list[PipeWireSource] = []
    yield made
    for s in made:
        s.stop()
    assert not [t for t in threading.enumerate() if t.name == "camguard-pipewire"]


def started(remote: str, made: list[PipeWireSource]) -> PipeWireSource:
    source = PipeWireSource(ProcessDescriber(), remote=remote)
    source.start(lambda: None)
    made.append(source)
    return source


def users(snap: SourceSnapshot, kind: DeviceKind = DeviceKind.CAMERA) -> dict[int | None, str]:
    return {None if u.process is None else u.process.pid: u.note
            for u in snap.usages if u.device.kind is kind}


def test_the_consumer_is_the_camera_user_with_the_chain_and_killing_it_ends_the_use(
        gst: None, pipewire: SoundServer, video: list[subprocess.Popen[bytes]],
        sources: list[PipeWireSource], tmp_path: Path) -> None:
    remote = pwvideo.remote_of(pipewire)
    source = started(remote, sources)
    cam, node = pwvideo.start_camera(remote, "fakecam-chain", tmp_path / "cam.log")
    video.append(cam)
    device_id = "pipewire:fakecam-chain"
    wait_until(lambda: device_id in {d.id for d in source.snapshot().devices}, 10,
               "the camera node as a device")
    (device,) = [d for d in source.snapshot().devices if d.id == device_id]
    assert device.kind is DeviceKind.CAMERA and "virtual camera" in device.name
    # A node with no consumer: no use (the producing client is not a user of its own node).
    assert not source.snapshot().usages

    consumer = pwvideo.start_consumer(remote, node, tmp_path / "consumer.log")
    video.append(consumer)
    wait_until(lambda: consumer.pid in users(source.snapshot()), 15, "the consumer named")
    snap = source.snapshot()
    (usage,) = [u for u in snap.usages if u.device.id == device_id]
    assert usage.process is not None and usage.process.pid == consumer.pid
    assert usage.process.name == "gst-launch-1.0" and usage.via == "pipewire"
    assert usage.note.startswith(f"gst-launch-1.0 → pipewire → {device_id}")
    broker = {pipewire.procs[n].pid for n in ("pipewire", "wireplumber", "pipewire-pulse")}
    assert not broker & set(users(snap)), "the broker is never the user"
    assert cam.pid not in users(snap), "the camera's own client is not its user"

    pwvideo.end(consumer)
    wait_until(lambda: not source.snapshot().usages, 10, "the use ending with its process")
    assert device_id in {d.id for d in source.snapshot().devices}


def test_monitor_events_name_the_consumer_and_a_bare_node_raises_nothing(
        gst: None, pipewire: SoundServer, video: list[subprocess.Popen[bytes]],
        tmp_path: Path) -> None:
    remote = pwvideo.remote_of(pipewire)
    events: list[MonitorEvent] = []
    monitor = Monitor([PipeWireSource(ProcessDescriber(), remote=remote)], SystemClock())
    monitor.add_sink(events.append)
    monitor.start()
    try:
        cam, node = pwvideo.start_camera(remote, "fakecam-events", tmp_path / "cam.log")
        video.append(cam)
        wait_until(lambda: any(d.id == "pipewire:fakecam-events" for d in monitor.state.devices),
                   10, "the node seen by the monitor")
        assert not [e for e in events if isinstance(e, UsageEvent)]
        consumer = pwvideo.start_consumer(remote, node, tmp_path / "consumer.log")
        video.append(consumer)

        def usage_events() -> list[tuple[EventType, int | None]]:
            return [(e.type, e.usage.process.pid if e.usage.process else None)
                    for e in list(events) if isinstance(e, UsageEvent)]

        wait_until(lambda: (EventType.STARTED, consumer.pid) in usage_events(), 15,
                   "a started event naming the consumer")
        consumer.kill()
        wait_until(lambda: (EventType.STOPPED, consumer.pid) in usage_events(), 15,
                   "a stopped event once the consumer is killed")
        assert usage_events() == [(EventType.STARTED, consumer.pid),
                                  (EventType.STOPPED, consumer.pid)]
    finally:
        monitor.stop()


def test_a_screen_cast_node_names_its_consumer_under_screen(
        gst: None, pipewire: SoundServer, video: list[subprocess.Popen[bytes]],
        sources: list[PipeWireSource], tmp_path: Path) -> None:
    remote = pwvideo.remote_of(pipewire)
    source = started(remote, sources)
    cast, node = pwvideo.start_camera(remote, "fakescreen", tmp_path / "cast.log",
                                      role="Screen")
    video.append(cast)
    consumer = pwvideo.start_consumer(remote, node, tmp_path / "consumer.log")
    video.append(consumer)
    wait_until(lambda: consumer.pid in users(source.snapshot(), DeviceKind.SCREEN), 15,
               "the screen recorder named")
    assert consumer.pid not in users(source.snapshot(), DeviceKind.CAMERA)
    (device,) = [d for d in source.snapshot().devices if d.id == "pipewire:fakescreen"]
    assert device.kind is DeviceKind.SCREEN


def test_one_shot_without_start_names_the_consumer(
        gst: None, pipewire: SoundServer, video: list[subprocess.Popen[bytes]],
        tmp_path: Path) -> None:
    remote = pwvideo.remote_of(pipewire)
    cam, node = pwvideo.start_camera(remote, "fakecam-oneshot", tmp_path / "cam.log")
    video.append(cam)
    consumer = pwvideo.start_consumer(remote, node, tmp_path / "consumer.log")
    video.append(consumer)
    source = PipeWireSource(ProcessDescriber(), remote=remote)
    wait_until(lambda: consumer.pid in users(source.snapshot()), 15, "the consumer, one-shot")
    assert {c.state for c in source.coverage()} == {CoverageState.WATCHING}


def test_pipewire_gone_is_blind_coverage_and_watching_again_once_back(
        gst: None, tmp_path: Path, video: list[subprocess.Popen[bytes]],
        sources: list[PipeWireSource]) -> None:
    need_tools(PW_TOOLS)
    srv = start_pipewire(tmp_path / "srv")
    try:
        remote = pwvideo.remote_of(srv)
        source = started(remote, sources)
        assert source.snapshot().degraded is None
        assert {c.state for c in source.coverage()} == {CoverageState.WATCHING}
        for name in ("feeder", "pipewire-pulse", "wireplumber", "pipewire"):
            srv.kill(name)

        def lost() -> bool:
            d = source.snapshot().degraded
            return d is not None and d.reason.startswith(UNREACHABLE)

        wait_until(lost, 10, "the watcher to report PipeWire gone")
        camera = {c.sensor: c for c in source.coverage()}["camera"]
        assert camera.state is CoverageState.BLIND and camera.reason.startswith(UNREACHABLE)
        one_shot = PipeWireSource(ProcessDescriber(), remote=remote)
        assert one_shot.snapshot().degraded is None  # a desktop without PipeWire is not broken
        assert {c.state for c in one_shot.coverage()} == {CoverageState.BLIND}

        assert srv.restart is not None
        srv.restart()
        wait_until(lambda: source.snapshot().degraded is None, 20, "the watcher reconnected")
        cam, node = pwvideo.start_camera(remote, "fakecam-back", tmp_path / "cam.log")
        video.append(cam)
        consumer = pwvideo.start_consumer(remote, node, tmp_path / "consumer.log")
        video.append(consumer)
        wait_until(lambda: consumer.pid in users(source.snapshot()), 15,
                   "the consumer named after the restart")
    finally:
        for proc in video:
            pwvideo.end(proc)
        srv.stop()


def test_a_broker_holding_a_camera_node_is_not_its_user(devdir: Path,
                                                       holders: list[Holder]) -> None:
    """With PipeWire watched, the media server's fd on /dev/video is not a use (its clients
    are); without, it is reported like any holder. The broker here is this Python: its
    executable is listed as the broker."""
    cam = make_standin(devdir / "video0")
    holders.append(Holder([cam]))
    python = os.path.realpath(sys.executable)

    def pids(brokers: tuple[str, ...]) -> set[int]:
        source = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber(),
                              camera_brokers=brokers)
        return {u.process.pid for u in source.snapshot().usages if u.process is not None}

    assert holders[0].pid in pids(())
    assert holders[0].pid not in pids((python,))
