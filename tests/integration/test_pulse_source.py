"""PulseSource against real PulseAudio and PipeWire servers: real recorders (parecord, a
sounddevice InputStream in a child), a server that dies and comes back, hot-plugged sources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from camguard.core.models import EventType, HealthEvent, MonitorEvent, SourceSnapshot, Usage
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.pulse import PulseSource
from camguard.platform.process import ProcessDescriber
from tests.conftest import need_tools
from tests.realenv import SoundServer, wait_until

MIC = "pulse:sinemic"

RECORDER = textwrap.dedent("""
    import sys
    import sounddevice as sd
    stream = sd.InputStream(channels=1, samplerate=48000)
    stream.start()
    print("recording", flush=True)
    sys.stdin.readline()
    stream.stop()
    stream.close()
""")


class Watched:
    """A started PulseSource and a count of its wake-ups (called on its watcher thread)."""

    def __init__(self, server: str, name: str = "pulse") -> None:
        self.wakes = 0
        self.source = PulseSource(ProcessDescriber(), server=server, name=name)
        self.source.start(self._wake)

    def _wake(self) -> None:
        self.wakes += 1

    def snap(self) -> SourceSnapshot:
        return self.source.snapshot()

    def users(self, device: str = MIC) -> list[Usage]:
        return [u for u in self.snap().usages if u.device.id == device]

    def pids(self, device: str = MIC) -> set[int | None]:
        return {None if u.process is None else u.process.pid for u in self.users(device)}


@pytest.fixture
def watching() -> Iterator[list[Watched]]:
    """Start with ``watching.append(Watched(srv))``; each is stopped, and its thread must end."""
    made: list[Watched] = []
    yield made
    for w in made:
        w.source.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("camguard-pulse")]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def parecord(srv: SoundServer, procs: list[subprocess.Popen[str]], device: str = "sinemic",
             **extra_env: str) -> subprocess.Popen[str]:
    need_tools(["parecord"])
    p = subprocess.Popen(["parecord", f"--device={device}", "/dev/null"], text=True,
                         env={**os.environ, **srv.env, **extra_env},
                         stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    procs.append(p)
    return p


def recording(srv: SoundServer, pid: int, source: str = "sinemic") -> bool:
    """The server's own answer (pactl): does this process record from ``source`` now?

    On PipeWire a new stream is listed about 25 ms before WirePlumber links it to a source
    (source index PA_INVALID_INDEX, corked, until then: measured), so "listed" is not enough.
    """
    sources = json.loads(srv.pactl("-f", "json", "list", "short", "sources").stdout or "[]")
    index = {s["name"]: s["index"] for s in sources}.get(source)
    streams = json.loads(srv.pactl("-f", "json", "list", "source-outputs").stdout or "[]")
    return any(s["properties"].get("application.process.id") == str(pid)
               and s["source"] == index and not s["corked"] for s in streams)


def end(p: subprocess.Popen[str]) -> None:
    p.send_signal(signal.SIGTERM)
    p.wait(10)


# -- who records ---------------------------------------------------------------------------
def test_parecord_is_a_microphone_usage_with_its_pid(
        sound_server: SoundServer, watching: list[Watched],
        procs: list[subprocess.Popen[str]]) -> None:
    w = Watched(sound_server.server)
    watching.append(w)
    assert w.snap().degraded is None
    assert MIC in {d.id for d in w.snap().devices}
    woken = w.wakes
    rec = parecord(sound_server, procs)
    wait_until(lambda: rec.pid in w.pids(), 10, f"parecord {rec.pid} as a usage")
    (usage,) = [u for u in w.users() if u.process and u.process.pid == rec.pid]
    assert usage.process is not None
    assert usage.process.create_time == psutil.Process(rec.pid).create_time()
    assert usage.process.name == "parecord" and usage.via == "stream"
    assert usage.note == ""  # its claim checks out against /proc
    assert usage.device.name and usage.device.source == "pulse"
    assert w.wakes > woken  # found through an event, not a poll
    end(rec)
    wait_until(lambda: rec.pid not in w.pids(), 10, "parecord's usage to end")


def test_sounddevice_input_stream_in_a_child_is_named(
        sound_server: SoundServer, watching: list[Watched],
        procs: list[subprocess.Popen[str]]) -> None:
    w = Watched(sound_server.server)
    watching.append(w)
    child = subprocess.Popen([sys.executable, "-c", RECORDER], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env={**os.environ, "PULSE_SERVER": sound_server.server})
    procs.append(child)
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline() == "recording\n"
    wait_until(lambda: child.pid in w.pids(), 10, "the sounddevice child as a usage")
    (usage,) = [u for u in w.users() if u.process and u.process.pid == child.pid]
    assert usage.note == "" and usage.process is not None
    assert usage.process.exe == psutil.Process(child.pid).exe()
    child.stdin.close()
    child.wait(10)
    wait_until(lambda: child.pid not in w.pids(), 10, "the child's usage to end")


def test_recording_a_monitor_source_is_not_a_microphone_usage(
        sound_server: SoundServer, watching: list[Watched],
        procs: list[subprocess.Popen[str]]) -> None:
    w = Watched(sound_server.server)
    watching.append(w)
    loopback = parecord(sound_server, procs, device="spk.monitor")
    wait_until(lambda: recording(sound_server, loopback.pid, "spk.monitor"), 10,
               "the monitor recording")
    control = parecord(sound_server, procs)  # seen after the monitor stream existed
    wait_until(lambda: control.pid in w.pids(), 10, "the control recorder")
    snap = w.snap()
    assert loopback.pid not in {u.process.pid for u in snap.usages if u.process}
    assert not [d for d in snap.devices if "monitor" in d.id]
    assert not [u for u in snap.usages if "monitor" in u.device.id]


def test_a_lying_stream_keeps_its_claimed_pid_with_a_note(
        sound_server: SoundServer, watching: list[Watched],
        procs: list[subprocess.Popen[str]]) -> None:
    """libpulse takes PULSE_PROP into the client's proplist: any app can claim any pid. On
    PipeWire it cannot fake the kernel's pipewire.sec.pid, so both servers end the same."""
    w = Watched(sound_server.server)
    watching.append(w)
    me = os.getpid()
    liar = parecord(sound_server, procs,
                    PULSE_PROP=f"application.process.id={me} pipewire.sec.pid=1")
    wait_until(lambda: me in w.pids(), 10, "the stream claiming the test's pid")
    assert liar.pid not in w.pids()
    (usage,) = [u for u in w.users() if u.process and u.process.pid == me]
    assert usage.note.startswith(f"stream claims pid {me} (binary 'pacat') but pid {me} is")
    end(liar)
    wait_until(lambda: me not in w.pids(), 10, "the liar's usage to end")


def test_a_claimed_pid_that_does_not_exist_has_no_process(
        sound_server: SoundServer, watching: list[Watched],
        procs: list[subprocess.Popen[str]]) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    w = Watched(sound_server.server)
    watching.append(w)
    rec = parecord(sound_server, procs, PULSE_PROP=f"application.process.id={gone.pid}")
    wait_until(lambda: None in w.pids(), 10, "a usage without a process")
    (usage,) = [u for u in w.users() if u.process is None]
    assert usage.note == (f"stream claims pid {gone.pid} (application 'parecord', binary "
                          "'pacat') but no such process exists")
    end(rec)
    wait_until(lambda: None not in w.pids(), 10, "the usage to end")


# -- devices -------------------------------------------------------------------------------
def add_source(srv: SoundServer, name: str) -> str:
    """Plug in a microphone; returns the module index. pipewire-pulse has no
    module-null-source: a null sink with a source media class is its virtual source."""
    if srv.kind == "pulseaudio":
        args = ["module-null-source", f"source_name={name}"]
    else:
        args = ["module-null-sink", "media.class=Audio/Source/Virtual", f"sink_name={name}",
                "channel_map=mono"]
    out = srv.pactl("load-module", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_plugged_in_microphone_appears_and_goes(
        sound_server: SoundServer, watching: list[Watched]) -> None:
    w = Watched(sound_server.server)
    watching.append(w)
    hot = f"pulse:hotmic{os.getpid()}"
    module = add_source(sound_server, hot.removeprefix("pulse:"))
    try:
        wait_until(lambda: hot in {d.id for d in w.snap().devices}, 10, "the new microphone")
    finally:
        sound_server.pactl("unload-module", module)
    wait_until(lambda: hot not in {d.id for d in w.snap().devices}, 10, "the mic to go")


# -- one-shot and dead servers ----------------------------------------------------------------
def test_one_shot_snapshot_without_start(
        sound_server: SoundServer, procs: list[subprocess.Popen[str]]) -> None:
    rec = parecord(sound_server, procs)
    wait_until(lambda: recording(sound_server, rec.pid), 10, "parecord's stream")
    threads = threading.active_count()
    snap = PulseSource(ProcessDescriber(), server=sound_server.server).snapshot()
    assert snap.degraded is None and snap.source == "pulse"
    assert rec.pid in {u.process.pid for u in snap.usages if u.process}
    assert threading.active_count() == threads  # one-shot: no watcher left behind


def test_missing_server_is_degraded_not_raised(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    missing = f"unix:{tmp_path}/no-such-dir/native"
    snap = PulseSource(ProcessDescriber(), server=missing).snapshot()
    assert snap.degraded is not None and not snap.usages and not snap.devices
    assert snap.degraded.reason.startswith("sound server unreachable: ")
    assert missing in snap.degraded.reason
    # server=None is libpulse's default, i.e. $PULSE_SERVER.
    monkeypatch.setenv("PULSE_SERVER", missing)
    snap = PulseSource(ProcessDescriber(), name="mic").snapshot()
    assert snap.degraded is not None and snap.degraded.source == "mic"


def test_started_against_a_missing_server_is_degraded_and_stops(
        tmp_path: Path, watching: list[Watched]) -> None:
    w = Watched(f"unix:{tmp_path}/none/native")
    watching.append(w)
    degraded = w.snap().degraded
    assert degraded is not None and degraded.reason.startswith("sound server unreachable: ")


def test_one_shot_against_a_frozen_server_is_degraded(
        fresh_sound_server: SoundServer) -> None:
    """SIGSTOP: the kernel still accepts the connection, nobody answers."""
    srv = fresh_sound_server
    pid = srv.server_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        snap = PulseSource(ProcessDescriber(), server=srv.server).snapshot()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert snap.degraded is not None and "no answer" in snap.degraded.reason
    assert PulseSource(ProcessDescriber(), server=srv.server).snapshot().degraded is None


def kill_server(srv: SoundServer) -> None:
    for name in (("pulseaudio",) if srv.kind == "pulseaudio" else ("pipewire-pulse", "pipewire")):
        srv.kill(name)


def test_server_death_is_degraded_and_recovery_detects_again(
        fresh_sound_server: SoundServer, procs: list[subprocess.Popen[str]]) -> None:
    srv = fresh_sound_server
    assert srv.restart is not None
    before = set(threading.enumerate())  # other tests' threads are not this test's business
    events: list[MonitorEvent] = []
    monitor = Monitor([PulseSource(ProcessDescriber(), server=srv.server)], SystemClock())
    monitor.add_sink(events.append)
    monitor.start()
    try:
        first = parecord(srv, procs)
        wait_until(lambda: (EventType.STARTED, first.pid) in started_stopped(events), 10,
                   "parecord's started event")
        kill_server(srv)
        wait_until(lambda: any(isinstance(e, HealthEvent) for e in events), 10,
                   "a degraded health event")
        (health,) = [e for e in events if isinstance(e, HealthEvent)]
        assert health.degraded is not None
        assert health.degraded.reason.startswith("sound server unreachable: ")
        assert (EventType.STOPPED, first.pid) in started_stopped(events)
        first.wait(10)  # parecord ends with its server
        srv.restart()
        wait_until(lambda: not monitor.state.degraded, 15, "recovery")
        again = parecord(srv, procs)
        wait_until(lambda: (EventType.STARTED, again.pid) in started_stopped(events), 10,
                   "the new parecord after the restart")
        assert not monitor.state.degraded
        healthy = [e.degraded is None for e in events if isinstance(e, HealthEvent)]
        assert healthy == [False, True]  # one degraded, one recovered: no flapping
    finally:
        monitor.stop()
    assert not [t for t in set(threading.enumerate()) - before
                if t.name.startswith("camguard-")]


def started_stopped(events: list[MonitorEvent]) -> list[tuple[EventType, int | None]]:
    return [(e.type, e.usage.process.pid if e.usage.process else None)
            for e in events if not isinstance(e, HealthEvent)]
