"""PipeWire camera client link -> the monitor's "started" event naming the app, side by side
with the /dev/video* path (a child's open() of a device node -> "started").

    .venv/bin/python bench/pipewire_latency.py [--rounds 40] [--background 1000]

Against a private real PipeWire 0.3.65 (tests/realenv.py) with a GStreamer videotestsrc
offered as a Video/Source node (tests/pwvideo.py). Each round starts a GStreamer consumer
(pipewiresrc) and times two things:

* link -> event: from the moment the daemon announced the link to a client, as seen by an
  independent ``pw-dump -m`` observer run by this script (it receives the same registry
  event as camguard's, at the same moment), to the monitor's "started" event naming the
  consumer's pid. This is camguard's part: reading, parsing, naming, the monitor.
* spawn -> event: from spawning the consumer (gst-launch starting up, negotiating) to the
  event; mostly GStreamer's start-up, for context.

Then the consumer is killed and the "stopped" event awaited. The /dev/video* path is
bench_detect.bench_camera with the same background load. Results go to
bench/results-pipewire.json and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_detect import Stamp, background, bench_camera, make_node, pct

from camguard.core.models import EventType
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.pipewire import PipeWireSource
from camguard.platform.process import ProcessDescriber
from tests import pwvideo, realenv


class LinkObserver:
    """An independent ``pw-dump -m``: the monotonic time each chunk mentioning a link from
    ``node`` arrived."""

    def __init__(self, remote: str, node: int) -> None:
        self.proc = subprocess.Popen(["pw-dump", "-m", "-N", "-r", remote],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.needle = f'"output-node-id": {node},'.encode()
        self.seen: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        tail = b""
        while not self.stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            t = time.monotonic()
            if not chunk:
                return
            if self.needle in tail + chunk:
                self.seen.append(t)
            tail = chunk[-len(self.needle):]

    def first_after(self, t0: float, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t in list(self.seen):
                if t >= t0:
                    return t
            time.sleep(0.001)
        raise TimeoutError("the observer never saw the link")

    def close(self) -> None:
        self.stop.set()
        self.proc.kill()
        self.proc.wait()


def bench_pipewire(rounds: int) -> dict[str, float] | str:
    if realenv.missing(realenv.PW_TOOLS) or realenv.missing(pwvideo.GST_TOOLS) or \
            not pwvideo.has_pipewire_gst():
        return f"not measured: apt-get install {pwvideo.GST_PACKAGES} pipewire-bin"
    root = Path(tempfile.mkdtemp(prefix="bench-pwvideo-"))
    srv = realenv.start_pipewire(root)
    remote = pwvideo.remote_of(srv)
    cam, node = pwvideo.start_camera(remote, "benchcam", root / "cam.log")
    observer = LinkObserver(remote, node)
    monitor = Monitor([PipeWireSource(ProcessDescriber(), remote=remote)], SystemClock(),
                      settle=0.002)
    stamp = Stamp()
    monitor.add_sink(stamp)
    monitor.start()
    link_lat, spawn_lat, stop_lat = [], [], []
    try:
        for _ in range(rounds):
            t0 = time.monotonic()
            consumer = pwvideo.start_consumer(remote, node, root / "consumer.log")
            t_event = stamp.wait(EventType.STARTED, consumer.pid, 20)
            link_lat.append(t_event - observer.first_after(t0))
            spawn_lat.append(t_event - t0)
            t1 = time.monotonic()
            consumer.kill()
            consumer.wait()
            stop_lat.append(stamp.wait(EventType.STOPPED, consumer.pid, 20) - t1)
    finally:
        monitor.stop()
        observer.close()
        pwvideo.end(cam)
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)
    return {"link_p50_ms": pct(link_lat, 50) * 1e3, "link_p99_ms": pct(link_lat, 99) * 1e3,
            "spawn_p50_ms": pct(spawn_lat, 50) * 1e3, "spawn_p99_ms": pct(spawn_lat, 99) * 1e3,
            "kill_stop_p50_ms": pct(stop_lat, 50) * 1e3,
            "kill_stop_p99_ms": pct(stop_lat, 99) * 1e3, "rounds": rounds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--background", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent / "results-pipewire.json")
    args = ap.parse_args()
    devdir = Path(tempfile.mkdtemp(prefix="camguard-bench-"))
    make_node(devdir / "video0")
    results: dict[str, object] = {"cpus": os.cpu_count(), "kernel": os.uname().release,
                                  "background_processes": args.background}
    try:
        with background(args.background):
            results["pipewire_camera"] = bench_pipewire(args.rounds)
            results["dev_video_camera"] = bench_camera(devdir, args.rounds)
    finally:
        shutil.rmtree(devdir, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
